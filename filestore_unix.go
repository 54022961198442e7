//go:build darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd

package fincalcauth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// The system calls behind FileStore's checks, on systems that have them
// all: O_NOFOLLOW, O_NONBLOCK, file owners and modes, and flock.

const (
	oNoFollow  = syscall.O_NOFOLLOW
	oNonblock  = syscall.O_NONBLOCK
	oDirectory = syscall.O_DIRECTORY
	checkModes = true
	haveFlock  = true
)

// ownerRefusal returns why a file or dir whose Lstat is fi is not
// the user's (the process's effective user), or "".
func ownerRefusal(fi fs.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "of an unknown owner"
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Sprintf("owned by uid %d, not by this process's user (uid %d)", st.Uid, uid)
	}
	return ""
}

// tryLock takes an exclusive flock on f without waiting, and reports
// whether it did. Closing f releases it.
func tryLock(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = syscall.Flock(int(fd), syscall.LOCK_EX|syscall.LOCK_NB)
			if ferr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if errors.Is(ferr, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return ferr == nil, ferr
}
