//go:build !(darwin || dragonfly || freebsd || illumos || linux || netbsd || openbsd)

package fincalcauth

import (
	"errors"
	"io/fs"
	"os"
)

// FileStore's reduced checks on systems without O_NOFOLLOW, file owners
// or flock: a link is detected by Lstat before a file is opened.

const (
	oNoFollow  = 0
	oNonblock  = 0
	oDirectory = 0
	checkModes = false
	haveFlock  = false
)

func ownerRefusal(fs.FileInfo) string { return "" }

func tryLock(*os.File) (bool, error) {
	return false, errors.ErrUnsupported
}
