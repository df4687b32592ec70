package statecrypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// cheap are test costs: the format is the same, derivation is fast.
var cheap = Params{Time: 1, MemKiB: minMemKiB, Threads: 1}

func TestSealOpen(t *testing.T) {
	plain := []byte(`{"lineage":"8c1f","resources":[{"address":"site.a.node.head"}]}`)
	s := NewWithParams("correct horse", cheap)
	env, err := s.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"lineage", "8c1f", "site.a.node.head"} {
		if bytes.Contains(env, []byte(leak)) {
			t.Errorf("envelope contains plaintext %q", leak)
		}
	}
	again, _ := s.Seal(plain)
	if bytes.Equal(env, again) {
		t.Error("two seals of the same text are equal (nonce reused)")
	}
	tests := []struct {
		name string
		pass string
		data func() []byte
		err  error
	}{
		{"right passphrase", "correct horse", func() []byte { return env }, nil},
		{"fresh sealer, right passphrase", "correct horse", func() []byte { return again }, nil},
		{"wrong passphrase", "correct horse!", func() []byte { return env }, ErrWrongPassphrase},
		{"flipped ciphertext bit", "correct horse", func() []byte { b := bytes.Clone(env); b[len(b)-20] ^= 1; return b }, ErrWrongPassphrase},
		{"flipped salt bit", "correct horse", func() []byte { b := bytes.Clone(env); b[20] ^= 1; return b }, ErrWrongPassphrase},
		{"plaintext", "correct horse", func() []byte { return plain }, ErrNotSealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewWithParams(tt.pass, cheap).Open(tt.data())
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil && !bytes.Equal(got, plain) {
				t.Errorf("opened %q, want %q", got, plain)
			}
		})
	}
}

func TestParseHeaderErrors(t *testing.T) {
	env, _ := NewWithParams("p", cheap).Seal([]byte("x"))
	mod := func(i int, v byte) []byte { b := bytes.Clone(env); b[i] = v; return b }
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"truncated", env[:headerLen], "truncated"},
		{"version", mod(8, 9), "envelope version 9"},
		{"kdf", mod(9, 7), "key derivation 7"},
		{"time", mod(13, 0), "time cost 0"},
		{"memory", mod(14, 0xff), "memory"},
		{"threads", mod(18, 0), "parallelism 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseHeader(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzOpen: any bytes either open to what was sealed or fail with an
// error; never a panic, never an unbounded key derivation.
func FuzzOpen(f *testing.F) {
	s := NewWithParams("fuzz", cheap)
	env, _ := s.Seal([]byte("seed state"))
	f.Add(env)
	f.Add([]byte(Magic))
	f.Add([]byte("{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _, err := ParseHeader(b)
		if err != nil {
			return
		}
		if h.Params != cheap {
			return // a valid but costly header: parsing it was the test
		}
		plain, err := s.Open(b)
		if err == nil && !bytes.Equal(b, env) && string(plain) != "seed state" {
			t.Fatalf("opened forged data to %q", plain)
		}
	})
}

// BenchmarkOpenDefault is one key derivation with DefaultParams plus an
// open: what every hvctl process with an encrypted state pays once.
func BenchmarkOpenDefault(b *testing.B) {
	env, _ := New("bench").Seal([]byte("state"))
	for i := 0; i < b.N; i++ {
		if _, err := New("bench").Open(env); err != nil {
			b.Fatal(err)
		}
	}
}
