package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// JournalFile is the name of the batch journal in the output directory.
const JournalFile = ".keyhole-migrate-journal.json"

// journalVersion is the journal's schema version.
const journalVersion = 1

const maxJournalSize = 16 << 20

// Journal records which steps of a batch are done, so that a batch that
// failed halfway resumes where it stopped when it is run again. It lives
// in the output directory as JournalFile and holds refs and step names
// only, never a value. It is rewritten (atomically, mode 0600) after every
// step, and removed once every step of the batch is done: a batch that
// completed leaves no journal, and running it again redoes it.
type Journal struct {
	out   *Out
	state journalState
	done  map[stepKey]bool
}

type journalState struct {
	Version int `json:"version"`
	// Command and Input identify the batch ("sealed-secrets", "git
	// /repo@<commit>"): a journal of another batch is not resumed.
	Command string       `json:"command"`
	Input   string       `json:"input"`
	Done    []journalRow `json:"done"`
}

type journalRow struct {
	Ref  string `json:"ref"`
	Step string `json:"step"`
}

type stepKey struct{ ref, step string }

// Journal opens the journal of the batch that command runs on input (a
// description of the input that changes when the input does, such as a
// file path or a repository and commit; never a value). A journal left by
// a different batch is an error that says how to proceed, rather than
// being resumed or overwritten.
func (o *Out) Journal(command, input string) (*Journal, error) {
	j := &Journal{out: o, done: map[stepKey]bool{}}
	data, err := o.readFile(JournalFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("journal %s: %s", o.Path(JournalFile), fileReason(err))
	}
	if data == nil {
		j.state = journalState{Version: journalVersion, Command: command, Input: input}
		return j, nil
	}
	if err := json.Unmarshal(data, &j.state); err != nil || j.state.Version != journalVersion {
		return nil, fmt.Errorf("journal %s: not a keyhole migrate journal (version %d); remove it to start over", o.Path(JournalFile), journalVersion)
	}
	if j.state.Command != command || j.state.Input != input {
		return nil, fmt.Errorf("journal %s belongs to an unfinished batch of `keyhole migrate %s` on %s, not `keyhole migrate %s` on %s: run that batch again to finish it, remove the journal to abandon it, or choose another --out",
			o.Path(JournalFile), j.state.Command, j.state.Input, command, input)
	}
	for _, r := range j.state.Done {
		j.done[stepKey{r.Ref, r.Step}] = true
	}
	return j, nil
}

// Resumed reports whether the journal holds steps of an earlier run.
func (j *Journal) Resumed() bool { return j != nil && len(j.state.Done) > 0 }

// IsDone reports whether step of ref is recorded as done.
func (j *Journal) IsDone(ref, step string) bool {
	return j != nil && j.done[stepKey{ref, step}]
}

// MarkDone records step of ref as done and saves the journal.
func (j *Journal) MarkDone(ref, step string) error {
	if j == nil || j.done[stepKey{ref, step}] {
		return nil
	}
	j.done[stepKey{ref, step}] = true
	j.state.Done = append(j.state.Done, journalRow{Ref: ref, Step: step})
	return j.save()
}

func (j *Journal) save() error {
	data, err := json.MarshalIndent(j.state, "", "  ")
	if err != nil {
		return err
	}
	if err := j.out.WriteFile(JournalFile, append(data, '\n')); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// finish removes the journal of a completed batch.
func (j *Journal) finish() error {
	if j == nil {
		return nil
	}
	if err := j.out.root.Remove(JournalFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal %s: %s", j.out.Path(JournalFile), fileReason(err))
	}
	return nil
}

// Task is one step of a batch: Step done to the object Ref. The steps of
// one Ref run in order, and a step whose Ref had a step fail is not run.
type Task struct {
	// Ref names what the step acts on, such as "namespace/name".
	Ref string
	// Step names the step, such as "write out/a.yaml" or "annotate"; with
	// Ref it is the journal's key, so it must be stable across runs.
	Step string
	// Do does the step. Its error must not quote a value.
	Do func(ctx context.Context) error
}

// Outcome is what a Run did, for the report printed at the end.
type Outcome struct {
	Done    []Task // done in this run
	Resumed []Task // done in an earlier run, skipped
	Failed  []Failure
	NotDone []Task // not run: an earlier step of the same Ref failed, or the context ended
}

// Failure is a step that failed.
type Failure struct {
	Task Task
	Err  error
}

// OK reports whether every step is done.
func (o *Outcome) OK() bool { return len(o.Failed) == 0 && len(o.NotDone) == 0 }

// Run runs tasks in order, skipping those the journal (which may be nil)
// records as done and recording each one that succeeds. A failed step
// does not stop the batch: the other Refs go on, and the later steps of
// the failed Ref are not done. When every step is done the journal is
// removed. The returned error is about the journal itself; step failures
// are in the Outcome.
func (j *Journal) Run(ctx context.Context, tasks []Task) (*Outcome, error) {
	out := &Outcome{}
	failed := map[string]bool{}
	for i, t := range tasks {
		switch {
		case j.IsDone(t.Ref, t.Step):
			out.Resumed = append(out.Resumed, t)
			continue
		case failed[t.Ref]:
			out.NotDone = append(out.NotDone, t)
			continue
		case ctx.Err() != nil:
			out.NotDone = append(out.NotDone, tasks[i:]...)
			return out, nil
		}
		if err := t.Do(ctx); err != nil {
			out.Failed = append(out.Failed, Failure{Task: t, Err: err})
			failed[t.Ref] = true
			continue
		}
		out.Done = append(out.Done, t)
		if err := j.MarkDone(t.Ref, t.Step); err != nil {
			// Without a journal a re-run would redo this step: stop.
			out.NotDone = append(out.NotDone, tasks[i+1:]...)
			return out, err
		}
	}
	if out.OK() {
		return out, j.finish()
	}
	return out, nil
}

// Print writes the outcome for people: one line per step, grouped as done,
// already done, failed and not done, then a summary line.
func (o *Outcome) Print(w io.Writer) {
	line := func(status string, t Task, detail string) {
		fmt.Fprintf(w, "%-10s %s: %s%s\n", status, t.Ref, t.Step, detail)
	}
	for _, t := range o.Resumed {
		line("skipped", t, " (done in an earlier run)")
	}
	for _, t := range o.Done {
		line("done", t, "")
	}
	for _, f := range o.Failed {
		line("FAILED", f.Task, ": "+oneLine(f.Err.Error()))
	}
	for _, t := range o.NotDone {
		line("not done", t, "")
	}
	summary := fmt.Sprintf("%d done, %d done earlier, %d failed, %d not done", len(o.Done), len(o.Resumed), len(o.Failed), len(o.NotDone))
	if !o.OK() {
		summary += "; run the same command again to resume"
	}
	fmt.Fprintln(w, summary)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
