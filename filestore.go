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
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
)

// FileStore is a [Store] that keeps each entry in a file of its own in
// one dir that only its user can read: the dir has mode 0700 and
// the files 0600, and looser modes are repaired when an entry is read or
// written. Files are replaced atomically, and Delete is safe against a
// Save from another process. Expired entries are removed as they are
// come across. A FileStore is safe for concurrent use by goroutines and
// by processes.
//
// Processes and commands that use the same dir, such as the
// fincalc-token command and a service run by the same user, share
// tokens.
type FileStore struct {
	dir string
	err error // why there is no dir
}

// NewFileStore returns a FileStore in dir, which it creates when it
// first saves. An empty dir means os.UserCacheDir()/fincalcauth
// ($XDG_CACHE_HOME/fincalcauth on Linux); if there is no such dir,
// every call fails.
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

// fileHeader starts every entry's file; its expiry and value follow.
const fileHeader = "fincalcauth store 1\n"

// fileExt ends the name of every entry's file.
const fileExt = ".token"

// Load returns the value saved under key, or nil if there is none or it
// has expired, in which case it removes the entry.
func (s *FileStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := s.checkDir(); err != nil {
		return nil, err
	}
	path := s.path(key)
	content, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fincalcauth: file store: %w", err)
	}
	value, expiry, ok := parseEntry(content)
	if !ok || !time.Now().Before(expiry) {
		removeIfHolds(path, content)
		return nil, nil
	}
	return value, nil
}

// Save writes value under key until expiry, atomically, and removes the
// expired entries of the dir.
func (s *FileStore) Save(ctx context.Context, key string, value []byte, expiry time.Time) error {
	if err := s.makeDir(); err != nil {
		return err
	}
	content := fmt.Appendf(nil, "%s%d\n%s", fileHeader, expiry.UnixMilli(), value)
	if err := writeAtomic(s.dir, s.path(key), content); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	s.sweep()
	return nil
}

// Delete removes the entry under key if it still holds value.
func (s *FileStore) Delete(ctx context.Context, key string, value []byte) error {
	if err := s.checkDir(); err != nil {
		return err
	}
	path := s.path(key)
	content, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	if v, _, ok := parseEntry(content); !ok || !bytes.Equal(v, value) {
		return nil
	}
	if err := removeIfHolds(path, content); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return nil
}

// Clear removes every entry of the store, whoever's credentials saved
// it, and needs none itself.
func (s *FileStore) Clear() error {
	if s.err != nil {
		return s.err
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	var errs []error
	for _, e := range entries {
		// Entries, and the temporary files of writes and deletions that
		// a process left when it died.
		if strings.Contains(e.Name(), fileExt) || strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return nil
}

// path returns the file of key: the key itself when it is a plain name,
// as the keys of a Config are, else a hash of it.
func (s *FileStore) path(key string) string {
	name := key
	if key == "" || len(key) > 100 || strings.ContainsFunc(key, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_')
	}) {
		h := sha256.Sum256([]byte(key))
		name = "h-" + hex.EncodeToString(h[:20])
	}
	return filepath.Join(s.dir, name+fileExt)
}

// makeDir creates the dir, if need be, for the user alone, and
// checks it as checkDir does.
func (s *FileStore) makeDir() error {
	if s.err != nil {
		return s.err
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	return s.checkDir()
}

// checkDir makes sure that the dir, if there is one, is the user's
// alone, repairing a looser mode.
func (s *FileStore) checkDir() error {
	if s.err != nil {
		return s.err
	}
	fi, err := os.Stat(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // nothing saved yet
	}
	if err != nil {
		return fmt.Errorf("fincalcauth: file store: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("fincalcauth: file store: %s is not a dir", s.dir)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(s.dir, 0o700); err != nil {
			return fmt.Errorf("fincalcauth: file store: dir %s is readable by others, and its mode cannot be repaired: %w", s.dir, err)
		}
	}
	return nil
}

// sweep removes the expired entries of the dir.
func (s *FileStore) sweep() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	now := time.Now()
	for i, e := range entries {
		if i == 1000 || !strings.HasSuffix(e.Name(), fileExt) {
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		if content, err := os.ReadFile(path); err == nil {
			if _, expiry, ok := parseEntry(content); !ok || !now.Before(expiry) {
				removeIfHolds(path, content)
			}
		}
	}
}

// readPrivate reads the file at path, after repairing a mode that lets
// others read it, and refuses one larger than an entry can be.
func readPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(0o600); err != nil {
			return nil, fmt.Errorf("%s is readable by others, and its mode cannot be repaired: %w", path, err)
		}
	}
	return io.ReadAll(io.LimitReader(f, tokenstore.MaxValue+int64(len(fileHeader))+32))
}

// parseEntry splits a file's content into its value and expiry.
func parseEntry(content []byte) (value []byte, expiry time.Time, ok bool) {
	rest, found := bytes.CutPrefix(content, []byte(fileHeader))
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
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if err == nil {
		err = f.Chmod(0o600)
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
// file aside first, atomically; if what it moved is not content, it puts
// it back with a hard link, which fails if yet another save has come
// since, whose file then stays.
func removeIfHolds(path string, content []byte) error {
	aside := fmt.Sprintf("%s.del-%d-%d", path, os.Getpid(), time.Now().UnixNano())
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	defer os.Remove(aside)
	moved, err := os.ReadFile(aside)
	if err != nil || bytes.Equal(moved, content) {
		return err
	}
	if err := os.Link(aside, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}
