package migrate

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Out is an output directory. Every file written through it is mode 0600,
// every directory it creates 0700; a file appears whole or not at all (it
// is written to a temporary file beside it, then renamed), and nothing is
// ever written outside the directory, even through a symlink inside it.
type Out struct {
	// Dir is the directory as given.
	Dir  string
	root *os.Root
}

// OpenOut opens (and creates, mode 0700) the output directory dir.
func OpenOut(dir string) (*Out, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("output directory %s: %s", dir, fileReason(err))
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %s", dir, fileReason(err))
	}
	return &Out{Dir: dir, root: root}, nil
}

// Close releases the directory.
func (o *Out) Close() error { return o.root.Close() }

// Path is the path of rel in the output directory, for messages.
func (o *Out) Path(rel string) string { return filepath.Join(o.Dir, filepath.FromSlash(rel)) }

// WriteFile writes data to rel (a relative, slash-separated path inside
// the directory) atomically with mode 0600, creating parent directories
// with mode 0700. An existing file is replaced.
func (o *Out) WriteFile(rel string, data []byte) error {
	name := filepath.FromSlash(rel)
	if !filepath.IsLocal(name) {
		return fmt.Errorf("%s: not a path inside output directory %s", rel, o.Dir)
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := o.root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("%s: %s", o.Path(dir), fileReason(err))
		}
	}
	tmp, f, err := o.createTemp(filepath.Dir(name))
	if err != nil {
		return fmt.Errorf("%s: %s", o.Path(rel), fileReason(err))
	}
	err = writeAll(f, data)
	if err == nil {
		err = o.root.Rename(tmp, name)
	}
	if err != nil {
		_ = o.root.Remove(tmp)
		return fmt.Errorf("%s: %s", o.Path(rel), fileReason(err))
	}
	return nil
}

func writeAll(f *os.File, data []byte) error {
	_, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// createTemp creates a new, empty, 0600 file in dir (relative to the
// root) with a random name that the batch never uses for output.
func (o *Out) createTemp(dir string) (string, *os.File, error) {
	for range 10 {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		name := filepath.Join(dir, ".keyhole-"+hex.EncodeToString(b)+".tmp")
		f, err := o.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		// The umask may only have narrowed 0600; make sure nothing widened it.
		if err := f.Chmod(0o600); err != nil {
			_ = f.Close()
			_ = o.root.Remove(name)
			return "", nil, err
		}
		return name, f, nil
	}
	return "", nil, errors.New("cannot create a temporary file")
}

// readFile reads rel from the directory; a missing file is (nil, nil).
func (o *Out) readFile(rel string) ([]byte, error) {
	f, err := o.root.Open(filepath.FromSlash(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxJournalSize))
}
