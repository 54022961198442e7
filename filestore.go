package fincalcauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
)

// FileStore is a [Store] and a [Leaser] that keeps each entry in a file of
// its own in one dir that only its user can read: the dir has mode
// 0700 and the files 0600. Files are replaced atomically, and Delete is
// safe against a Save from another process. Expired entries are removed
// as they are come across. A FileStore is safe for concurrent use by
// goroutines and by processes.
//
// Processes and commands that use the same dir, such as the
// fincalc-token command and a service run by the same user, share
// tokens.
//
// A FileStore is often run by root, so it trusts nothing that someone
// else could have put in its way:
//   - It refuses a dir that is a symbolic link, that is owned by
//     another user, or that others may write to: they could swap its
//     files for links. Every call then fails, saying why. A dir only
//     readable by others has its mode repaired.
//   - It uses a file only if it is a regular file owned by the user,
//     opened without following a link and without waiting, and reads at
//     most what an entry can hold. Anything else where an entry should be
//     (a link, a FIFO, a device, another user's file) is a miss: Load,
//     Delete, Clear and the sweep never open, chmod nor remove it, and
//     it is reported once per path: the first Load or Delete that meets
//     it returns an error, which a source logs at Warn, and later ones
//     count it a miss in silence. A Save of its key puts a new file in
//     its place with a rename, which never follows a link.
//   - It repairs a file's mode that lets others read it only through the
//     descriptor it opened so, never by path.
//
// The dir's own path, up to its last element, is taken as given:
// whoever may rename the dir's parent can redirect the store.
//
// On systems other than Linux, macOS, the BSDs and illumos, owners and
// modes are not checked, a link is detected before a file is opened
// rather than refused by the open itself, and leases are not supported.
type FileStore struct {
	dir string
	err error // why there is no dir

	reported sync.Map // paths whose refused entry was reported
}

// NewFileStore returns a FileStore in dir, which it creates, for the
// user alone, when it first saves or leases. An empty dir means
// os.UserCacheDir()/fincalcauth ($XDG_CACHE_HOME/fincalcauth on Linux);
// if there is no such dir, every call fails.
func NewFileStore(dir string) *FileStore {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return &FileStore{err: fmt.Errorf("fincalcauth: file store: no user cache dir: %w", err)}
		}
		dir = filepath.Join(base, "fincalcauth")
	}
	return &FileStore{dir: dir}
}

// Dir returns the store's dir.
func (s *FileStore) Dir() string { return s.dir }

const (
	// fileHeader starts every entry's file; its expiry and value follow.
	fileHeader = "fincalcauth store 1\n"
	// leaseHeader starts every lease's file; its expiry and owner follow.
	leaseHeader = "fincalcauth lease 1\n"

	// fileExt and leaseExt end the names of entries' and leases' files.
	fileExt  = ".token"
	leaseExt = ".lease"
	// tmpPrefix starts the names of files being written; delSep is in
	// the names of files being removed.
	tmpPrefix = ".tmp-"
	delSep    = ".del-"

	// maxFile is the most read of any file: a header, an expiry of up to
	// 20 digits and its newline, and a value or owner of up to
	// tokenstore.MaxValue bytes. A longer file is no entry.
	maxFile = len(fileHeader) + 21 + tokenstore.MaxValue

	// sweepNames and sweepFiles bound the work of the sweep after each
	// Save: it reads at most sweepNames names of the dir and opens at
	// most sweepFiles files, drawn among them at random so that
	// successive sweeps cover a dir that holds more.
	sweepNames = 4096
	sweepFiles = 16

	// staleTemp is the age past which a temporary file is taken as left
	// by a process that died while writing or removing.
	staleTemp = time.Minute
)

// refusedError reports an entry's file that the store does not use.
type refusedError struct {
	path, why string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("fincalcauth: file store: %s is %s; it is taken as missing and left alone", e.path, e.why)
}

// Load returns the value saved under key, or nil if there is none or it
// has expired, in which case it removes the entry.
func (s *FileStore) Load(ctx context.Context, key string) ([]byte, error) {
	if ok, err := s.checkDir(false); !ok {
		return nil, err
	}
	path := s.path(key)
	content, err := s.readEntry(path)
	if err != nil {
		return nil, err
	}
	if content == nil {
		return nil, nil
	}
	value, expiry, ok := parseFile(fileHeader, content)
	if !ok || !time.Now().Before(expiry) {
		removeIfHolds(path, content)
		return nil, nil
	}
	return value, nil
}

// Save writes value under key until expiry, atomically, and removes some
// of the dir's expired entries.
func (s *FileStore) Save(ctx context.Context, key string, value []byte, expiry time.Time) error {
	if _, err := s.checkDir(true); err != nil {
		return err
	}
	if len(value) > tokenstore.MaxValue {
		return fmt.Errorf("fincalcauth: file store: a value of %d bytes is over the limit of %d", len(value), tokenstore.MaxValue)
	}
	if err := writeAtomic(s.dir, s.path(key), fileContent(fileHeader, expiry, value)); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	s.sweep()
	return nil
}

// Delete removes the entry under key if it still holds value.
func (s *FileStore) Delete(ctx context.Context, key string, value []byte) error {
	if ok, err := s.checkDir(false); !ok {
		return err
	}
	path := s.path(key)
	content, err := s.readEntry(path)
	if err != nil || content == nil {
		return err
	}
	if v, _, ok := parseFile(fileHeader, content); !ok || !bytes.Equal(v, value) {
		return nil
	}
	if err := removeIfHolds(path, content); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return nil
}

// Clear removes every entry and lease of the store, whoever's credentials
// saved it, and needs none itself: a process that holds a lease loses it.
// It leaves alone, and reports, what is not a regular file of the user.
func (s *FileStore) Clear() error {
	if ok, err := s.checkDir(false); !ok {
		return err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if storeFile(e.Name()) == otherFile {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		fi, err := os.Lstat(path)
		if err == nil {
			if why := refusal(fi); why != "" {
				err = &refusedError{path, why}
			} else {
				err = os.Remove(path)
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return nil
}

// path returns the file of key: the key itself when it is a plain name,
// as the keys of a Config are, else a hash of it.
func (s *FileStore) path(key string) string { return s.named(key, fileExt) }

// leasePath returns the file of key's lease.
func (s *FileStore) leasePath(key string) string { return s.named(key, leaseExt) }

func (s *FileStore) named(key, ext string) string {
	name := key
	if key == "" || len(key) > 100 || strings.ContainsFunc(key, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) {
		h := sha256.Sum256([]byte(key))
		name = "h-" + hex.EncodeToString(h[:20])
	}
	return filepath.Join(s.dir, name+ext)
}

// checkDir makes sure that the dir is the user's alone, creating it
// if create is set, and reports whether it exists. It looks at the
// dir itself, never through a link, refuses one that is another
// user's or that others may write to, and repairs a mode that lets
// others read it, through a descriptor of the dir.
func (s *FileStore) checkDir(create bool) (bool, error) {
	if s.err != nil {
		return false, s.err
	}
	fi, err := os.Lstat(s.dir)
	if errors.Is(err, fs.ErrNotExist) && create {
		// MkdirAll makes every missing dir of the path 0700 and the
		// process's user its owner.
		if err = os.MkdirAll(s.dir, 0o700); err == nil {
			fi, err = os.Lstat(s.dir)
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // nothing saved yet
	}
	if err != nil {
		return false, fmt.Errorf("fincalcauth: file store: %w", err)
	}
	if err := dirRefusal(s.dir, fi); err != nil {
		return false, err
	}
	if checkModes && fi.Mode().Perm()&0o077 != 0 {
		f, err := os.OpenFile(s.dir, os.O_RDONLY|oNoFollow|oDirectory, 0)
		if err == nil {
			err = sameFile(f, fi)
			if err == nil {
				err = f.Chmod(0o700)
			}
			f.Close()
		}
		if err != nil {
			return false, fmt.Errorf("fincalcauth: file store: dir %s is readable by others, and its mode cannot be repaired: %w", s.dir, err)
		}
	}
	return true, nil
}

// dirRefusal returns why the store does not use dir, whose Lstat is fi,
// or nil.
func dirRefusal(dir string, fi fs.FileInfo) error {
	why := ""
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		why = "a symbolic link: the dir must be named by its own path"
	case !fi.IsDir():
		why = "not a dir"
	default:
		if w := ownerRefusal(fi); w != "" {
			why = w + ": its owner could swap its files for links"
		} else if checkModes && fi.Mode().Perm()&0o022 != 0 {
			why = fmt.Sprintf("writable by others (mode %v): they could swap its files for links", fi.Mode().Perm())
		}
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("fincalcauth: file store: refusing dir %s: it is %s", dir, why)
}

// refusal returns why a file whose Lstat is fi is not used, or "".
func refusal(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case !m.IsRegular():
		return fmt.Sprintf("not a regular file (%v)", m.Type())
	}
	return ownerRefusal(fi)
}

// openFile opens the file at path with flag, only if it is a regular
// file of the user: it looks at it first, never through a link, opens
// it without following a link nor waiting for a FIFO's writer, and
// checks what it opened again. It repairs a mode that
// lets others read the file. A file that is not used is reported by a
// *refusedError.
func openFile(path string, flag int) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if why := refusal(fi); why != "" {
		return nil, &refusedError{path, why}
	}
	f, err := os.OpenFile(path, flag|oNoFollow|oNonblock, 0)
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && refusal(fi) != "" {
			return nil, &refusedError{path, refusal(fi)}
		}
		return nil, err
	}
	// What was looked at may have been replaced since: check what was
	// opened, which is no link.
	if fi, err = f.Stat(); err == nil && refusal(fi) != "" {
		err = &refusedError{path, refusal(fi)}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	if checkModes && fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s is readable by others, and its mode cannot be repaired: %w", path, err)
		}
	}
	return f, nil
}

// sameFile reports an error unless f is the file that fi describes.
func sameFile(f *os.File, fi fs.FileInfo) error {
	got, err := f.Stat()
	if err != nil {
		return err
	}
	if !os.SameFile(got, fi) {
		return fmt.Errorf("%s was replaced while being opened", f.Name())
	}
	return nil
}

// readBounded reads f from its start, at most maxFile+1 bytes: content
// longer than maxFile is no entry.
func readBounded(f *os.File) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, 0, int64(maxFile)+1))
}

// readFile returns the first bytes of the regular file of the user at
// path, as openFile and readBounded do.
func readFile(path string) ([]byte, error) {
	f, err := openFile(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f)
}

// readEntry returns the content of the entry's file at path, or nil if
// there is none. A file that is not used counts as none, and is reported
// in an error the first time only.
func (s *FileStore) readEntry(path string) ([]byte, error) {
	content, err := readFile(path)
	var refused *refusedError
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.As(err, &refused):
		if _, seen := s.reported.LoadOrStore(path, true); seen {
			return nil, nil
		}
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return content, nil
}

// fileContent returns the content of a file with the given header.
func fileContent(header string, expiry time.Time, value []byte) []byte {
	return fmt.Appendf(nil, "%s%d\n%s", header, expiry.UnixMilli(), value)
}

// parseFile splits a file's content into its value and expiry.
func parseFile(header string, content []byte) (value []byte, expiry time.Time, ok bool) {
	if len(content) > maxFile {
		return nil, time.Time{}, false
	}
	rest, found := bytes.CutPrefix(content, []byte(header))
	if !found {
		return nil, time.Time{}, false
	}
	line, value, found := bytes.Cut(rest, []byte("\n"))
	ms, err := strconv.ParseInt(string(line), 10, 64)
	if !found || err != nil {
		return nil, time.Time{}, false
	}
	return value, time.UnixMilli(ms), true
}

// writeAtomic writes content to path through a temporary file of mode
// 0600 in dir, renamed over path, so that no reader sees a torn file.
func writeAtomic(dir, path string, content []byte) error {
	f, err := os.CreateTemp(dir, tmpPrefix+"*") // O_CREATE|O_EXCL, 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(0o600) // against an odd umask
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// removeIfHolds removes the file at path if it holds content, and leaves
// in place a file that another process saved meanwhile. It moves the
// file aside first, atomically; if what it moved is not content (or not
// a regular file of the user), it puts it back with a hard link, which
// fails if yet another save has come since, whose file then stays.
func removeIfHolds(path string, content []byte) error {
	aside := fmt.Sprintf("%s%s%d-%d", path, delSep, os.Getpid(), time.Now().UnixNano())
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer os.Remove(aside)
	moved, err := readFile(aside)
	if err == nil && bytes.Equal(moved, content) {
		return nil
	}
	if err := os.Link(aside, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// Kinds of names in the dir.
const (
	otherFile = iota
	entryFile
	leaseFile
	tempFile
)

// storeFile returns the kind of file that name is.
func storeFile(name string) int {
	switch {
	case strings.HasPrefix(name, tmpPrefix) || strings.Contains(name, fileExt+delSep) || strings.Contains(name, leaseExt+delSep):
		return tempFile
	case strings.HasSuffix(name, fileExt):
		return entryFile
	case strings.HasSuffix(name, leaseExt):
		return leaseFile
	}
	return otherFile
}

// sweep removes expired entries and leases of the dir, and the
// temporary files of writers that died, bounded as sweepNames and
// sweepFiles say. It looks at regular files only.
func (s *FileStore) sweep() {
	d, err := os.OpenFile(s.dir, os.O_RDONLY|oNoFollow|oDirectory, 0)
	if err != nil {
		return
	}
	// Draw up to sweepFiles of the first sweepNames names (reservoir
	// sampling), so that live entries cannot hide expired ones for good.
	var picked []string
	seen := 0
	for names := 0; names < sweepNames; {
		entries, err := d.ReadDir(256)
		names += len(entries)
		for _, e := range entries {
			if !e.Type().IsRegular() || storeFile(e.Name()) == otherFile {
				continue
			}
			seen++
			if len(picked) < sweepFiles {
				picked = append(picked, e.Name())
			} else if i := rand.IntN(seen); i < sweepFiles {
				picked[i] = e.Name()
			}
		}
		if err != nil {
			break
		}
	}
	d.Close()
	now := time.Now()
	for _, name := range picked {
		path := filepath.Join(s.dir, name)
		switch storeFile(name) {
		case tempFile:
			if fi, err := os.Lstat(path); err == nil && refusal(fi) == "" && now.Sub(fi.ModTime()) > staleTemp {
				os.Remove(path)
			}
		case entryFile:
			if content, err := readFile(path); err == nil {
				if _, expiry, ok := parseFile(fileHeader, content); !ok || !now.Before(expiry) {
					removeIfHolds(path, content)
				}
			}
		case leaseFile:
			sweepLease(path)
		}
	}
}

// Leases.
//
// The lease of a key is a file beside its entry, <name>.lease, that
// holds the owner and the expiry. Every process reads, writes and
// removes it only while it holds an exclusive flock on it, so that
// deciding whether the lease is free and writing the new owner are one
// step: two processes never both find it free, stale or theirs, and
// therefore never both believe they hold it. A process killed while it
// holds the flock loses it with its descriptors; the flock is held for a
// few system calls only, never while a token is fetched.
//
// A file can be removed while another process waits for its flock, which
// it then takes on a file that no longer has a name. So after taking
// the flock, a process checks that the path still names the file it
// locked, and starts again if not; and the file is removed only by a
// process that holds its flock, and has checked so. A new file is
// created with O_CREATE|O_EXCL|O_NOFOLLOW, mode 0600, and an existing
// one is used only as openFile allows. A file whose content does not
// parse, such as a new one or one whose writer died in mid-write, holds
// no lease.

// maxOwner bounds the owner of a lease.
const maxOwner = tokenstore.MaxValue

// Lease takes the lease on key until expiry for owner, as [Leaser] says,
// in a lock file beside the entry's. A lock file that is not a regular
// file of the user makes Lease fail, every time, as nobody can take that
// lease. Waiting for another process to finish its few system calls on
// the lock file ends with ctx. Where flock is not available (see
// [FileStore]), Lease fails with an error that wraps
// errors.ErrUnsupported.
func (s *FileStore) Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error) {
	if len(owner) == 0 || len(owner) > maxOwner {
		return false, fmt.Errorf("fincalcauth: file store: a lease's owner must have 1 to %d bytes, not %d", maxOwner, len(owner))
	}
	if !haveFlock {
		return false, fmt.Errorf("fincalcauth: file store: no leases without flock: %w", errors.ErrUnsupported)
	}
	if _, err := s.checkDir(true); err != nil {
		return false, err
	}
	held := false
	err := withLease(ctx, s.leasePath(key), true, func(f *os.File, content []byte) error {
		if o, exp, ok := parseFile(leaseHeader, content); ok && !bytes.Equal(o, owner) && time.Now().Before(exp) {
			return nil // another's, live
		}
		// Free, stale or owner's own: take it, or extend it.
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.WriteAt(fileContent(leaseHeader, expiry, owner), 0); err != nil {
			return err
		}
		held = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("fincalcauth: file store: lease: %w", err)
	}
	return held, nil
}

// Release ends owner's lease on key, as [Leaser] says: it removes the
// lock file only if owner holds it.
func (s *FileStore) Release(ctx context.Context, key string, owner []byte) error {
	if ok, err := s.checkDir(false); !ok {
		return err
	}
	path := s.leasePath(key)
	err := withLease(ctx, path, false, func(f *os.File, content []byte) error {
		if o, _, ok := parseFile(leaseHeader, content); ok && bytes.Equal(o, owner) {
			// An expired lease that is still owner's is no other's
			// either: removing it changes nothing but the dir.
			return os.Remove(path)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fincalcauth: file store: release: %w", err)
	}
	return nil
}

// sweepLease removes the lock file at path if its lease has expired, or
// it holds none, unless another process is at work on it.
func sweepLease(path string) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // one attempt at the flock
	withLease(ctx, path, false, func(f *os.File, content []byte) error {
		if _, exp, ok := parseFile(leaseHeader, content); !ok || !time.Now().Before(exp) {
			return os.Remove(path)
		}
		return nil
	})
}

// withLease calls fn with the lock file at path, and its first bytes,
// while it holds the file's flock and path names it, as the comment on
// leases says. It creates the file if create is set, and does nothing if
// there is none and create is not. It tries to take the flock until ctx
// is done, at least once.
func withLease(ctx context.Context, path string, create bool, fn func(f *os.File, content []byte) error) error {
	for pause := time.Millisecond; ; {
		f, err := openLease(path, create)
		if errors.Is(err, fs.ErrNotExist) {
			if !create {
				return nil
			}
			if _, err := os.Lstat(filepath.Dir(path)); err != nil {
				return err // the dir is gone: no lease in it
			}
			continue // removed between our two opens
		}
		if err != nil {
			return err
		}
		locked, err := tryLock(f)
		if err == nil && locked {
			var fi fs.FileInfo
			if fi, err = os.Lstat(path); err == nil && sameFile(f, fi) == nil {
				var content []byte
				if content, err = readBounded(f); err == nil {
					err = fn(f, content)
				}
				f.Close() // and the flock with it
				return err
			}
			err = nil // removed or replaced: start again
		}
		f.Close()
		if err != nil {
			return err
		}
		if locked {
			continue
		}
		// Another process is at work on the file for a moment.
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is locked by another process: %w", path, ctx.Err())
		case <-time.After(pause):
		}
		pause = min(2*pause, 20*time.Millisecond)
	}
}

// openLease opens the lock file at path for reading and writing,
// creating it, exclusively and for the user alone, if create is set and
// there is none.
func openLease(path string, create bool) (*os.File, error) {
	if create {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return openFile(path, os.O_RDWR)
}
