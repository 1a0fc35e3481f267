package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// commit is one commit of the walk. Commits are numbered in the walk's
// order, newest first: a parent always comes after all its children
// (--date-order), so a larger number is an older commit.
type commit struct {
	oid  string
	time int64 // committer date, Unix seconds
}

// change is one path a commit changed, as its first-parent diff shows.
// old is "" when the commit added the path, new is "" when it deleted it.
// Anything that is not a regular file (symlink, submodule) counts as "".
type change struct {
	commit int32
	path   string
	old    string
	new    string
}

// logArgs lists, for each commit reachable from revs, the blobs it changed.
//
// --diff-merges=first-parent gives a merge commit the diff against its
// first parent, i.e. what the merge brought into the branch, including a
// value added while resolving a conflict; plain git log shows no diff for
// merges at all. --no-renames reports a rename as a deletion plus an
// addition: a renamed file is then read at its new path (its blob is
// already known, so this costs nothing) and the rename commit counts as
// introducing its values at the new path. --root gives the first commit
// (and a shallow clone's boundary commits) a diff against the empty tree.
func logArgs(revs []string, paths []string) []string {
	args := []string{
		"log", "--raw", "--no-abbrev", "-z", "--no-renames", "--root",
		"--diff-merges=first-parent", "--date-order", "--no-color",
		"--format=commit %H %ct",
	}
	if len(paths) > 0 {
		// Limiting to paths would otherwise let git simplify history
		// and skip a side branch whose merge kept the other side's
		// version: a value that lived only on that branch would be lost.
		args = append(args, "--full-history")
	}
	args = append(args, revs...)
	args = append(args, "--")
	return append(args, paths...)
}

const zeroOID = "0000000000000000000000000000000000000000"

// logParser reads git log --raw -z output. Its tokens are NUL-terminated:
// a header "commit <oid> <time>" (which git may precede with a newline),
// then for each changed path a status token
// ":<old mode> <new mode> <old oid> <new oid> <status>" followed by the
// path (two paths for a copy or rename, which --no-renames rules out but
// which are parsed all the same).
type logParser struct {
	r *bufio.Reader
}

func newLogParser(r io.Reader) *logParser {
	return &logParser{r: bufio.NewReaderSize(r, 64<<10)}
}

// token returns the next NUL-terminated token, without the NUL. It is
// valid until the next call.
func (p *logParser) token() ([]byte, error) {
	tok, err := p.r.ReadSlice(0)
	if errors.Is(err, bufio.ErrBufferFull) {
		// A path longer than the buffer: rare enough to copy.
		long := append([]byte(nil), tok...)
		for errors.Is(err, bufio.ErrBufferFull) {
			tok, err = p.r.ReadSlice(0)
			long = append(long, tok...)
		}
		tok = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(tok) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return tok[:len(tok)-1], nil
}

// parse calls onCommit for each commit header and onChange for each
// changed path. It returns nil at the end of the stream.
func (p *logParser) parse(ctx context.Context, onCommit func(commit) error, onChange func(change) error) error {
	var n int32 = -1
	for {
		tok, err := p.token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		tok = bytes.TrimLeft(tok, "\n")
		switch {
		case bytes.HasPrefix(tok, []byte("commit ")):
			if n&1023 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			c, err := parseHeader(tok)
			if err != nil {
				return err
			}
			n++
			if err := onCommit(c); err != nil {
				return err
			}
		case len(tok) > 0 && tok[0] == ':':
			if n < 0 {
				return fmt.Errorf("git log: change before any commit")
			}
			// Decoded before the next token: tok's bytes are the
			// reader's, and reading the path reuses them.
			oldOID, newOID, status, err := parseRaw(tok)
			if err != nil {
				return err
			}
			path, err := p.token()
			if err != nil {
				return fmt.Errorf("git log: reading a path: %w", err)
			}
			if status == 'R' || status == 'C' {
				// Source, then destination: the destination is the path
				// the new blob lives at.
				if path, err = p.token(); err != nil {
					return fmt.Errorf("git log: reading a path: %w", err)
				}
			}
			c := change{commit: n, path: string(path), old: oldOID, new: newOID}
			if err := onChange(c); err != nil {
				return err
			}
		case len(tok) == 0:
			// An empty commit's header is followed by nothing.
		default:
			return fmt.Errorf("git log: unexpected output %q", truncate(tok, 40))
		}
	}
}

func parseHeader(tok []byte) (commit, error) {
	f := bytes.Fields(tok)
	if len(f) != 3 {
		return commit{}, fmt.Errorf("git log: bad commit header %q", truncate(tok, 80))
	}
	t, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return commit{}, fmt.Errorf("git log: bad commit time in %q", truncate(tok, 80))
	}
	return commit{oid: string(f[1]), time: t}, nil
}

// parseRaw splits ":100644 100644 <old> <new> M" (the status may carry a
// score, e.g. R100). An object that is absent or not a regular file's
// blob comes back as "".
func parseRaw(tok []byte) (oldOID, newOID string, status byte, err error) {
	f := bytes.Fields(tok[1:])
	if len(f) != 5 || len(f[4]) == 0 {
		return "", "", 0, fmt.Errorf("git log: bad raw diff line %q", truncate(tok, 120))
	}
	blob := func(mode, oid []byte) string {
		if !isFile(mode) || string(oid) == zeroOID {
			return ""
		}
		return string(oid)
	}
	return blob(f[0], f[2]), blob(f[1], f[3]), f[4][0], nil
}

// isFile reports whether a git mode is a regular file (100644, 100755,
// and the old group-writable 100664). Symlinks (120000) hold a target
// path, gitlinks (160000) name a commit of another repository: neither is
// a blob worth reading.
func isFile(mode []byte) bool {
	return bytes.HasPrefix(mode, []byte("100"))
}

// truncate keeps error messages about git's output short. git's output
// here is metadata (hashes, modes, paths), never file content.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
