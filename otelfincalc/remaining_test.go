package otelfincalc_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/otelfincalc"
)

// TestRemainingBounded checks that fincalcauth.token.remaining reports at
// most MaxSources series, dropping those whose tokens expire first, and
// forgets a source ForgetAfter after its token's expiry.
func TestRemainingBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tel := newTelemetry(t)
		obs := tel.observer()
		const extra = 5
		now := time.Now()
		for i := range otelfincalc.MaxSources + extra {
			obs.Observe(context.Background(), fincalcauth.TokenInUse{
				Source: fmt.Sprintf("s%07d", i),
				Expiry: now.Add(time.Duration(i+1) * time.Minute),
			})
		}
		gauge := func() []string { return tel.points(t)["fincalcauth.token.remaining (s)"] }
		got := gauge()
		if len(got) != otelfincalc.MaxSources {
			t.Fatalf("%d series, want %d", len(got), otelfincalc.MaxSources)
		}
		for _, line := range got[:extra] {
			// Sorted: the first lines are the lowest sources left, which
			// must come after the dropped ones.
			if line < fmt.Sprintf("{fincalcauth.source=s%07d}", extra) {
				t.Errorf("series %s kept; the %d whose tokens expire first should be gone", line, extra)
			}
		}

		time.Sleep(time.Duration(otelfincalc.MaxSources+extra)*time.Minute + otelfincalc.ForgetAfter + time.Second)
		if got := gauge(); len(got) != 0 {
			t.Errorf("%d series an hour after every token expired, want none: %v", len(got), got[:min(len(got), 3)])
		}
	})
}
