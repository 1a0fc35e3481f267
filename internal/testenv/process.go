package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"
)

// process is one running component. Its stdout and stderr go to a log
// file in the control plane's directory; it runs in its own process group
// so that stopping it also stops anything it spawned.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
}

// terminateGrace is how long a component gets between SIGTERM and SIGKILL.
const terminateGrace = 5 * time.Second

func startProcess(name, binary, logPath string, args []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), binary, strings.Join(args, " "))
	// G702: a test harness running the project's cached builds, or the
	// KEYHOLE_* overrides the developer set, with arguments it composes.
	cmd := exec.Command(binary, args...) //nolint:gosec // G702: see above.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes an unexpected exit, with the log tail.
func (p *process) exitError() error {
	return fmt.Errorf("%s exited early (%v); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, tailFile(p.logPath, 30))
}

// stop sends SIGTERM to the process group, then SIGKILL after
// terminateGrace, and waits for the process to be reaped.
func (p *process) stop() error {
	if p == nil || p.exited() {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if err := signalGroup(pgid, false); err != nil && !p.exited() {
		return fmt.Errorf("stopping %s: %w", p.name, err)
	}
	select {
	case <-p.done:
		// The leader is gone; kill stragglers in its group, if any.
		_ = signalGroup(pgid, true)
		return nil
	case <-time.After(terminateGrace):
	}
	_ = signalGroup(pgid, true)
	select {
	case <-p.done:
		return nil
	case <-time.After(terminateGrace):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
	}
}

// freePort asks the kernel for an unused loopback port. Another process
// may take it before the component binds it; callers retry on
// "address already in use".
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func addrInUse(logPath string) bool {
	return strings.Contains(tailFile(logPath, 50), "address already in use")
}

// tailFile returns the last n lines of a file, or a note why it cannot.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const maxRead = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxRead {
		if _, err := f.Seek(-maxRead, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
