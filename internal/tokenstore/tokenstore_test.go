package tokenstore

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

const (
	secret   = "s3cr3t-value"
	tokenURL = "https://api.fincalc.co.uk/api/oauth/token"
)

func box() *Box {
	return New(secret, tokenURL, "12345", "hello@example.com", []string{"fact-find", "client-information"})
}

func TestSealOpen(t *testing.T) {
	expiry := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tok := (&oauth2.Token{AccessToken: "eyJ.a.b", TokenType: "Bearer", Expiry: expiry, ExpiresIn: 86400}).
		WithExtra(map[string]any{"scope": "fact-find"})
	b := box()
	v := b.Seal(tok)
	if bytes.Contains(v, []byte("eyJ.a.b")) {
		t.Fatalf("sealed value shows the token: %q", v)
	}
	got := b.Open(v)
	if got == nil {
		t.Fatal("Open of a value just sealed = nil")
	}
	type view struct {
		AccessToken, TokenType string
		Expiry                 time.Time
		ExpiresIn              int64
		Extra                  any
	}
	want := view{"eyJ.a.b", "Bearer", expiry, 86400, nil}
	if diff := cmp.Diff(want, view{got.AccessToken, got.TokenType, got.Expiry, got.ExpiresIn, got.Extra("scope")}); diff != "" {
		t.Errorf("Open(Seal(tok)) (-want +got):\n%s", diff)
	}
	if bytes.Equal(v, b.Seal(tok)) {
		t.Error("two seals of one token are equal: the nonce is not fresh")
	}
}

func TestOpenRefuses(t *testing.T) {
	b := box()
	tok := &oauth2.Token{AccessToken: "eyJ.a.b", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour), ExpiresIn: 3600}
	v := b.Seal(tok)
	flip := func(i int) []byte {
		c := bytes.Clone(v)
		c[i] ^= 1
		return c
	}
	other := New("another-secret", tokenURL, "12345", "hello@example.com", []string{"fact-find", "client-information"})
	otherEmail := New(secret, tokenURL, "12345", "other@example.com", []string{"fact-find", "client-information"})
	tests := map[string]struct {
		b *Box
		v []byte
	}{
		"wrong key":              {other, v},
		"other credentials":      {otherEmail, v},
		"tampered ciphertext":    {b, flip(len(v) - 1)},
		"tampered nonce":         {b, flip(1)},
		"other version":          {b, append([]byte{version + 1}, v[1:]...)},
		"too large":              {b, append(bytes.Clone(v), make([]byte, MaxValue)...)},
		"empty":                  {b, nil},
		"shorter than the nonce": {b, v[:5]},
		"empty access token":     {b, b.Seal(&oauth2.Token{TokenType: "Bearer", ExpiresIn: 3600})},
		"no lifetime":            {b, b.Seal(&oauth2.Token{AccessToken: "x", ExpiresIn: 0})},
	}
	for name, tt := range tests {
		if got := tt.b.Open(tt.v); got != nil {
			t.Errorf("%s: Open = %+v, want nil", name, got)
		}
	}
}

func TestName(t *testing.T) {
	base := box().Name()
	if len(base) != 40 || bytes.ContainsFunc([]byte(base), func(r rune) bool { return !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') }) {
		t.Errorf("Name() = %q, want 40 lower-case hex digits", base)
	}
	same := map[string]*Box{
		"scopes in another order": New(secret, tokenURL, "12345", "hello@example.com", []string{"client-information", "fact-find"}),
		"a scope repeated":        New(secret, tokenURL, "12345", "hello@example.com", []string{"fact-find", "client-information", "fact-find"}),
	}
	for what, b := range same {
		if b.Name() != base {
			t.Errorf("%s: name %s, want %s", what, b.Name(), base)
		}
	}
	differ := map[string]*Box{
		"secret":    New("another-secret", tokenURL, "12345", "hello@example.com", []string{"fact-find", "client-information"}),
		"token URL": New(secret, "http://127.0.0.1:1/token", "12345", "hello@example.com", []string{"fact-find", "client-information"}),
		"client ID": New(secret, tokenURL, "12346", "hello@example.com", []string{"fact-find", "client-information"}),
		"email":     New(secret, tokenURL, "12345", "other@example.com", []string{"fact-find", "client-information"}),
		"scopes":    New(secret, tokenURL, "12345", "hello@example.com", []string{"fact-find"}),
		// The parts are length-prefixed: moving a byte between two parts
		// makes another name.
		"a byte moved between parts": New(secret, tokenURL, "1234", "5hello@example.com", []string{"fact-find", "client-information"}),
	}
	seen := map[string]string{base: "base"}
	for what, b := range differ {
		if prev, ok := seen[b.Name()]; ok {
			t.Errorf("%s: same name as %s", what, prev)
		}
		seen[b.Name()] = what
	}
	// A value sealed under one name does not open under another.
	v := box().Seal(&oauth2.Token{AccessToken: "x", ExpiresIn: 60})
	for what, b := range differ {
		if b.Open(v) != nil {
			t.Errorf("a value sealed for the base credentials opens for other %s", what)
		}
	}
}
