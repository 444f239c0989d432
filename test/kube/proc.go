package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Components run in their own sessions so they outlive a `kube up` command, and each leaves a pid
// file: teardown (in this process or a later one) kills exactly those processes, after checking
// that the pid still runs the binary it recorded.

func (c *Cluster) spawn(name, bin string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(c.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin:"+binDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while we run
	rec := strconv.Itoa(cmd.Process.Pid) + " " + bin + "\n"
	return os.WriteFile(filepath.Join(c.dir, "pids", name+".pid"), []byte(rec), 0o644)
}

// killRecorded SIGKILLs the recorded process of name (and its process group) and waits for it.
func killRecorded(ctx context.Context, dir, name string) error {
	file := filepath.Join(dir, "pids", name+".pid")
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return os.Remove(file)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return os.Remove(file)
	}
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.TrimSuffix(exe, " (deleted)") == f[1] {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if err := waitGone(ctx, pid); err != nil {
			return fmt.Errorf("kill %s (pid %d): %w", name, pid, err)
		}
	}
	return os.Remove(file)
}

func killPIDs(ctx context.Context, pids []int) error {
	for _, p := range pids {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	for _, p := range pids {
		if err := waitGone(ctx, p); err != nil {
			return fmt.Errorf("kill pid %d: %w", p, err)
		}
	}
	return nil
}

// waitGone waits until pid has exited (a zombie counts: its parent reaps it).
func waitGone(ctx context.Context, pid int) error {
	for {
		if len(alive([]int{pid})) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// pidsWithArg lists processes whose command line contains arg exactly (the containerd shims of
// one node name its socket: they are reparented away from containerd and hold its containers).
func pidsWithArg(arg string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// alive keeps the pids that still run (not exited, not zombies waiting for a parent to reap them).
func alive(pids []int) []int {
	var live []int
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && len(b) > i+2 && b[i+2] == 'Z' {
			continue
		}
		live = append(live, p)
	}
	return live
}
