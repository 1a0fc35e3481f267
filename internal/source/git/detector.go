package git

import (
	"github.com/keyhole-sec/keyhole/internal/gitscan"
)

// Detector is what Scan needs from the detection engine: gitscan's API,
// as an interface so that the plumbing can be tested with a fake. Every
// method may be called from several goroutines at once.
type Detector interface {
	// Candidate filters paths before any blob is read.
	Candidate(path string) bool
	// Scan finds the leaks in one file, read as the file at path.
	Scan(path string, content []byte) ([]gitscan.Leak, []gitscan.Problem)
	// GeneratorInputs lists the files a kustomization's secretGenerators
	// read; it is called for every file Scan reads, and lists nothing
	// for a file that is not a kustomization.
	GeneratorInputs(path string, content []byte) []gitscan.GeneratorInput
	// ScanGeneratorInput finds the leaks in one such file.
	ScanGeneratorInput(in gitscan.GeneratorInput, content []byte) []gitscan.Leak
}

// NewDetector adapts a gitscan.Scanner (and gitscan's package-level
// functions) to Detector.
func NewDetector(s *gitscan.Scanner) Detector { return scanner{s} }

type scanner struct{ *gitscan.Scanner }

func (scanner) Candidate(p string) bool { return gitscan.Candidate(p) }

func (scanner) GeneratorInputs(p string, content []byte) []gitscan.GeneratorInput {
	return gitscan.GeneratorInputs(p, content)
}
