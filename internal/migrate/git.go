package migrate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/keyhole-sec/keyhole/internal/source/git"
)

// GitSource is what FromGit read: the repository and the commit of HEAD.
type GitSource struct {
	// Dir is the directory given, made absolute.
	Dir string
	// Commit is HEAD's commit id.
	Commit string
}

// FromGit reads the plaintext Secret manifests tracked at HEAD in the git
// repository at dir (or in its subdirectory dir): the YAML and JSON files
// of HEAD's tree under dir, as committed, whatever the working tree holds.
// Each Secret's Origin.Path is relative to dir, with forward slashes, so
// that output can mirror the layout.
//
// A file that cannot be decoded does not fail the batch: it is returned as
// a Skipped with Broken set (a Secret in it was not read), or without
// Broken when it is a template ("{{"), which is not a manifest until it is
// rendered. A directory that is not a git repository, or a repository git
// cannot read, is an error naming it.
func FromGit(ctx context.Context, dir string) (*Batch, *GitSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("git repository %s: %w", dir, err)
	}
	if st, err := os.Stat(abs); err != nil {
		return nil, nil, fmt.Errorf("git repository %s: %s", abs, fileReason(err))
	} else if !st.IsDir() {
		return nil, nil, fmt.Errorf("git repository %s: not a directory", abs)
	}
	// internal/source/git reads HEAD as the git scan reads history: git
	// isolated from the user's configuration, one cat-file for every
	// blob, binary and oversized files skipped with the reason.
	head, err := git.ReadHead(ctx, abs, isManifestName, MaxFileSize)
	if err != nil {
		return nil, nil, err
	}
	b := &Batch{}
	for _, f := range head.Files {
		if f.Skip != "" {
			b.Skipped = append(b.Skipped, Skipped{Origin: Origin{Path: f.Path}, Reason: f.Skip, Broken: true})
			continue
		}
		one := &Batch{}
		if err := decodeFile(f.Path, f.Content, one); err != nil {
			sk := Skipped{Origin: Origin{Path: f.Path}, Reason: err.Error(), Broken: true}
			var de *docError
			if errors.As(err, &de) {
				sk.Origin, sk.Reason = de.origin, de.msg
				if de.line > 0 {
					sk.Reason = fmt.Sprintf("line %d: %s", de.line, de.msg)
				}
			}
			if bytes.Contains(f.Content, []byte("{{")) {
				sk.Origin, sk.Reason, sk.Broken = Origin{Path: f.Path}, "a template ({{ }}), not a manifest until rendered", false
			}
			b.Skipped = append(b.Skipped, sk)
			continue
		}
		b.Secrets = append(b.Secrets, one.Secrets...)
		b.Skipped = append(b.Skipped, one.Skipped...)
	}
	return b, &GitSource{Dir: abs, Commit: head.Commit}, nil
}

func isManifestName(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
