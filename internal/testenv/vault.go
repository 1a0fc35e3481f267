package testenv

// A real HashiCorp Vault server for tests: `vault server -dev`, built by
// build-vault.sh, on a free loopback port with in-memory storage, KV v2
// mounted at secret/ and a random root token. Like the control plane, it
// runs in its own process group in a temporary directory, and Stop leaves
// nothing behind.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// VaultVersion is the Vault server that build-vault.sh builds, and names
// its cache directory (TestVaultScriptVersion checks they agree). It is an
// MPL release. No v1.14.x both builds and runs from published modules
// alone; see the Vault section of the engineers' build notes.
const VaultVersion = "v1.14.2"

// VaultStartTimeout bounds StartVaultT. A dev server is up in about a
// second on an idle machine.
var VaultStartTimeout = 2 * time.Minute

// Vault is a running Vault dev server: unsealed, in-memory storage, KV v2
// mounted at secret/. Any auth method built into Vault (kubernetes
// included) can be enabled through Client.
type Vault struct {
	// Addr is the server's base URL, http://127.0.0.1:PORT.
	Addr string
	// RootToken authenticates as root. It is random per server, and Logs
	// and StartVault's errors redact it.
	RootToken string
	// Dir is the server's HOME; it holds vault.log.
	// Stop removes it.
	Dir string
	// Binary is the vault binary that runs.
	Binary string

	mu      sync.Mutex
	proc    *process
	stopped bool
}

// VaultBinary returns $KEYHOLE_VAULT_BIN, else the binary that
// build-vault.sh caches. The error says how to build it.
func VaultBinary() (string, error) {
	path := os.Getenv("KEYHOLE_VAULT_BIN")
	if path == "" {
		// Same rule as the script, as in BinDir.
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("testenv: locating the vault binary: %w; set KEYHOLE_VAULT_BIN", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		path = filepath.Join(cache, "keyhole", "tools", "vault-"+VaultVersion, "vault")
	}
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return path, fmt.Errorf("testenv: no vault binary at %s; run internal/testenv/build-vault.sh to build it (once, 10 to 40 minutes), or point KEYHOLE_VAULT_BIN at a vault %s binary", path, VaultVersion)
	}
	return path, nil
}

// StartVault starts a Vault dev server and returns once sys/health reports
// it initialized, unsealed and active, and KV v2 at secret/ answers. On
// error nothing is left running or on disk.
func StartVault(ctx context.Context) (_ *Vault, err error) {
	if err := platformCheck(); err != nil {
		return nil, err
	}
	bin, err := VaultBinary()
	if err != nil {
		return nil, err
	}
	// HOME must point into Dir: builtin plugins write there (the snowflake
	// database plugin wrote .cache/snowflake/ocsp_response_cache.json at
	// start). Only the environment can say so, and startProcess passes
	// none, so env(1) starts the server with it.
	envBin, err := exec.LookPath("env")
	if err != nil {
		return nil, fmt.Errorf("testenv: starting vault needs env(1): %w", err)
	}
	dir, err := os.MkdirTemp("", "keyhole-vault-")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	v := &Vault{Dir: dir, Binary: bin, RootToken: randomToken()}
	defer func() {
		if err != nil {
			_ = v.Stop()
			err = &redactedError{err: fmt.Errorf("testenv: vault: %w", err), secret: v.RootToken}
		}
	}()
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		v.Addr = "http://127.0.0.1:" + strconv.Itoa(port)
		args := []string{
			"-i", // nothing inherited: no VAULT_* of the developer's
			"HOME=" + dir,
			"PATH=" + os.Getenv("PATH"),
			"VAULT_DEV_ROOT_TOKEN_ID=" + v.RootToken,
			bin, "server", "-dev",
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
			// No ~/.vault-token, even inside Dir.
			"-dev-no-store-token",
		}
		p, err := startProcess("vault", envBin, filepath.Join(dir, "vault.log"), args)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		v.proc = p
		v.mu.Unlock()
		err = waitFor(ctx, p, "vault sys/health and secret/config", v.ready)
		if err == nil {
			return v, nil
		}
		// The dev server also binds port+1 for its cluster listener, so a
		// port can be taken on either side.
		if p.exited() && addrInUse(p.logPath) && attempt < bindAttempts {
			continue
		}
		_ = p.stop()
		return nil, err
	}
}

// ready is nil once the server is active and KV v2 at secret/ serves
// requests: a new KV v2 mount answers "upgrading" for a moment.
func (v *Vault) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// sys/health answers 200 only when initialized, unsealed and active.
	if err := v.get(ctx, "/v1/sys/health", false); err != nil {
		return err
	}
	return v.get(ctx, "/v1/secret/config", true)
}

func (v *Vault) get(ctx context.Context, path string, auth bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.Addr+path, nil)
	if err != nil {
		return err
	}
	if auth {
		req.Header.Set("X-Vault-Token", v.RootToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Client returns a client for v authenticated with the root token. It
// ignores VAULT_* environment variables, so a developer's own Vault
// settings cannot redirect it.
func (v *Vault) Client() (*vaultapi.Client, error) {
	cfg := vaultapi.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("testenv: vault client: %w", cfg.Error)
	}
	cfg.Address = v.Addr
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("testenv: vault client for %s: %w", v.Addr, err)
	}
	c.SetToken(v.RootToken)
	c.ClearNamespace()
	return c, nil
}

// Logs returns the tail of the server's log with the root token redacted,
// for test failure messages. Stop removes the log, so call it before.
func (v *Vault) Logs() string {
	v.mu.Lock()
	stopped := v.stopped
	v.mu.Unlock()
	if stopped {
		return "(no logs: Stop removed " + v.Dir + ")"
	}
	path := filepath.Join(v.Dir, "vault.log")
	return redact(fmt.Sprintf("----- vault (%s) -----\n%s\n", path, tailFile(path, 40)), v.RootToken)
}

// Stop stops the server (SIGTERM, then SIGKILL after a grace period) and
// removes Dir. It is idempotent.
func (v *Vault) Stop() error {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return nil
	}
	v.stopped = true
	p := v.proc
	v.mu.Unlock()
	var errs []error
	if err := p.stop(); err != nil {
		errs = append(errs, err)
	}
	if v.Dir != "" {
		if err := os.RemoveAll(v.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("testenv: stopping vault: %w", err)
	}
	return nil
}

// StartVaultT starts a Vault dev server for t and stops it when t ends. It
// skips t only under -short; otherwise any failure, including a missing
// binary, fails t. When t has failed, the server's log tail is logged
// before teardown.
func StartVaultT(t testing.TB) *Vault {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: -short: skipping test that needs a Vault server")
	}
	ctx, cancel := context.WithTimeout(t.Context(), VaultStartTimeout)
	defer cancel()
	v, err := StartVault(ctx)
	if err != nil {
		t.Fatalf("starting vault: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vault logs:\n%s", v.Logs())
		}
		if err := v.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return v
}

// redactedError hides a secret in err's message; errors.Is and errors.As
// still see err.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string { return redact(e.err.Error(), e.secret) }
func (e *redactedError) Unwrap() error { return e.err }

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted root token>")
}
