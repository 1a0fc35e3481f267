package daemon

import (
	"context"
	"time"

	"github.com/keyhole-sec/keyhole/internal/encryption"
)

// DefaultEncryptionInterval is how often the API server's /metrics is read
// again for encryption at rest: the provider changes only when the API
// server restarts or reloads its EncryptionConfiguration.
const DefaultEncryptionInterval = 5 * time.Minute

// encryptionLoop reads the API server's /metrics at once and then every
// interval, and hands each result to the analysis, which runs again only
// when the conclusion changed (a count going up changes nothing). A
// forbidden or failing read makes the provider unknown, never keeps an
// older "encrypted": it is logged once when it starts, with the missing
// permission, and once when it ends.
func (d *daemon) encryptionLoop(ctx context.Context) {
	for {
		st := encryption.Read(ctx, d.opts.Config)
		if ctx.Err() != nil {
			return
		}
		prev := d.encryption.Swap(&st)
		failed, wasFailed := st.Error != "", prev != nil && prev.Error != ""
		switch {
		case failed && !wasFailed:
			// The reason names the missing permission when it was
			// forbidden.
			d.log.Warn("cannot read the API server's /metrics; encryption at rest is reported unknown until it can",
				"reason", st.Error)
		case !failed && wasFailed:
			d.log.Info("reading the API server's /metrics again", "provider", st.Provider)
		}
		if prev == nil || !st.Same(*prev) {
			if !failed {
				d.log.Info("encryption at rest of Secrets", "provider", st.Provider, "apiserver", st.Version)
			}
			d.markChanged()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(d.opts.EncryptionInterval):
		}
	}
}

// encryptionStatus is the latest read of /metrics, or nil before the
// first.
func (d *daemon) encryptionStatus() *encryption.Status { return d.encryption.Load() }
