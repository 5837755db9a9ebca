package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// RIEInvokePath is the emulator's invoke API, the same path as Lambda's Invoke.
const RIEInvokePath = "/2015-03-31/functions/function/invocations"

// Emulated is one bootstrap running under the Lambda Runtime Interface
// Emulator (aws-lambda-rie), as `sam local invoke` runs it in its container.
type Emulated struct {
	URL     string    // the invoke URL
	Started time.Time // when the emulator process was started
	pid     int       // the emulator's pid, also its process group
	boot    string    // the bootstrap's path
	done    chan struct{}
	client  *http.Client
}

// StartEmulated starts rie with the bootstrap in dir on free loopback ports,
// with exactly the environment env (plus what the emulator needs to find
// the bootstrap), its output appended to logPath. It returns once the
// emulator accepts connections; the bootstrap itself starts on the first
// invocation, as a cold start does. Stop ends the emulator and its
// bootstrap (they share a process group of their own).
func StartEmulated(rie, dir string, env []string, logPath string) (*Emulated, error) {
	emuAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	apiAddr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "==== %s: aws-lambda-rie on %s (runtime API %s)\n", filepath.Base(dir), emuAddr, apiAddr)
	cmd := exec.Command(rie,
		"--runtime-interface-emulator-address", emuAddr,
		"--runtime-api-address", apiAddr,
		filepath.Join(dir, "bootstrap"))
	cmd.Dir = dir
	cmd.Env = append([]string{"LAMBDA_TASK_ROOT=" + dir, "_HANDLER=bootstrap"}, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that stopping it stops the bootstrap too;
	// and it dies with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	e := &Emulated{URL: "http://" + emuAddr + RIEInvokePath, Started: started, pid: cmd.Process.Pid, boot: filepath.Join(dir, "bootstrap"),
		done: make(chan struct{}), client: &http.Client{Timeout: 15 * time.Minute}}
	go func() { cmd.Wait(); close(e.done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-e.done:
			return nil, fmt.Errorf("the emulator exited at start (%v)", cmd.ProcessState)
		default:
		}
		c, err := net.DialTimeout("tcp", emuAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return e, nil
		}
		if time.Now().After(deadline) {
			e.Stop()
			return nil, fmt.Errorf("the emulator did not listen on %s within 15s", emuAddr)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Invoke sends one payload and returns the function's answer.
func (e *Emulated) Invoke(payload []byte) ([]byte, error) {
	resp, err := e.client.Post(e.URL, "application/json", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the emulator answered %s: %.300q", resp.Status, body)
	}
	return body, nil
}

// BootstrapPID returns the pid of the bootstrap the emulator started (its
// child), or 0 when it has not started one.
func (e *Emulated) BootstrapPID() int {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after ')'.
		rest := b[bytes.LastIndexByte(b, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) > 1 && f[1] == strconv.Itoa(e.pid) {
			return pid
		}
	}
	return 0
}

// Stop ends the emulator and the bootstrap at once (kill -9), as a crashed
// or timed-out execution environment ends: the group the emulator leads,
// and its bootstrap by pid, which the emulator starts in a group of the
// bootstrap's own (a group kill alone leaves it running, orphaned): never
// anything else.
func (e *Emulated) Stop() {
	boot := e.BootstrapPID()
	syscall.Kill(-e.pid, syscall.SIGKILL)
	e.killBootstrap(boot)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
	}
}

// Shutdown ends the emulator as Lambda ends an environment: SIGTERM, then
// SIGKILL when it has not exited within five seconds; a bootstrap that
// outlived the emulator is killed too.
func (e *Emulated) Shutdown() {
	boot := e.BootstrapPID()
	syscall.Kill(-e.pid, syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		e.Stop()
	}
	if syscall.Kill(-e.pid, 0) == nil {
		syscall.Kill(-e.pid, syscall.SIGKILL)
	}
	e.killBootstrap(boot)
}

// killBootstrap ends the bootstrap the emulator started, pid, if it
// outlived the emulator: by pid, and only while pid still runs this
// emulator's bootstrap executable (a pid freed and given to another
// process is left alone).
func (e *Emulated) killBootstrap(pid int) {
	if pid <= 0 {
		return
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == e.boot {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// PeakRSS returns the peak resident set size of process pid (VmHWM), in
// bytes.
func PeakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM of %d: %q", pid, v)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", pid)
}

// ResetPeakRSS starts a new peak for pid (Linux clear_refs "5").
func ResetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
