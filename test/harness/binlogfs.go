package harness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// binlogDirName is the directory, in the server's, that holds the binlog when
// ServerConfig.BinlogFSBytes is set.
const binlogDirName = "binlog"

// BinlogDir is where the binlog is when ServerConfig.BinlogFSBytes is set: a file system of its
// own, so a test can fill it.
func (s *Server) BinlogDir() string { return filepath.Join(s.dir, binlogDirName) }

func (s *Server) mountBinlogFS() error {
	if s.Config.BinlogFSBytes <= 0 {
		return nil
	}
	if err := os.MkdirAll(s.BinlogDir(), 0o755); err != nil {
		return fmt.Errorf("binlog file system: %w", err)
	}
	opts := "size=" + strconv.FormatInt(s.Config.BinlogFSBytes, 10)
	if err := syscall.Mount("tmpfs", s.BinlogDir(), "tmpfs", 0, opts); err != nil {
		return fmt.Errorf("mount a tmpfs for the binlog at %s: %w", s.BinlogDir(), err)
	}
	return nil
}

func (s *Server) unmountBinlogFS() error {
	if s.Config.BinlogFSBytes <= 0 {
		return nil
	}
	// Lazily: a server process that did not exit yet may still hold a file open.
	if err := syscall.Unmount(s.BinlogDir(), syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("unmount the binlog file system at %s: %w", s.BinlogDir(), err)
	}
	return nil
}

// FillBinlogFS writes a file into the binlog file system until it is full, so the next binlog
// write finds no space, and returns a function that removes the file again.
func (s *Server) FillBinlogFS() (free func() error, err error) {
	if s.Config.BinlogFSBytes <= 0 {
		return nil, fmt.Errorf("server %s: no binlog file system of its own (ServerConfig.BinlogFSBytes)", s.Config.Name)
	}
	name := filepath.Join(s.BinlogDir(), "filler")
	f, err := os.Create(name)
	if err != nil {
		return nil, fmt.Errorf("fill binlog file system: %w", err)
	}
	chunk := make([]byte, 64<<10)
	for err == nil {
		_, err = f.Write(chunk)
	}
	if cerr := f.Close(); !errors.Is(err, syscall.ENOSPC) || cerr != nil && !errors.Is(cerr, syscall.ENOSPC) {
		os.Remove(name)
		return nil, fmt.Errorf("fill binlog file system: %w", errors.Join(err, cerr))
	}
	return func() error { return os.Remove(name) }, nil
}
