// Package statecrypt seals hvctl's state (snapshots, journal records,
// saved plans) with AES-256-GCM under a key derived from a passphrase
// with argon2id (RFC 9106). Every sealed blob is an envelope that
// carries what is needed to open it again with the passphrase:
//
//	magic    "HVCTLENC" (8 bytes)
//	version  1 (1 byte)
//	kdf      1 = argon2id (1 byte)
//	time     uint32, big endian: argon2 passes
//	memory   uint32, big endian: argon2 memory in KiB
//	threads  1 byte
//	salt     16 bytes
//	nonce    12 bytes
//	sealed   AES-256-GCM ciphertext and tag
//
// The header is the GCM additional data, so a changed parameter fails
// to open like a changed byte of ciphertext. Wrong passphrase and
// damaged data cannot be told apart by GCM; Open reports both as
// ErrWrongPassphrase, which says so.
package statecrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Magic starts every envelope.
const Magic = "HVCTLENC"

const (
	version    = 1
	kdfArgon2  = 1
	saltLen    = 16
	nonceLen   = 12
	headerLen  = len(Magic) + 1 + 1 + 4 + 4 + 1 + saltLen + nonceLen
	tagLen     = 16
	keyLen     = 32
	maxMemKiB  = 1 << 20 // 1 GiB: a header asking for more is not ours
	minMemKiB  = 8 << 10
	maxTime    = 16
	maxThreads = 64
)

// Params are the argon2id cost parameters.
type Params struct {
	Time    uint32
	MemKiB  uint32
	Threads uint8
}

// DefaultParams follow RFC 9106's second recommended option, with
// fewer passes: 64 MiB, 3 passes, 4 lanes.
var DefaultParams = Params{Time: 3, MemKiB: 64 << 10, Threads: 4}

// ErrWrongPassphrase is returned when an envelope does not open: the
// passphrase is wrong or the data was changed.
var ErrWrongPassphrase = errors.New("the passphrase is wrong or the encrypted data was changed (AES-GCM authentication failed)")

// ErrNotSealed is returned by Open for data that is not an envelope.
var ErrNotSealed = errors.New("not encrypted by hvctl")

// Header is an envelope's parsed header.
type Header struct {
	Params Params
	Salt   [saltLen]byte
	Nonce  [nonceLen]byte
}

// IsSealed reports whether b starts like an envelope.
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(Magic)) }

// ParseHeader checks an envelope's header and returns it with the
// sealed bytes after it. It does no cryptography, so it is cheap on any
// input; every error says what is wrong.
func ParseHeader(b []byte) (*Header, []byte, error) {
	if !IsSealed(b) {
		return nil, nil, ErrNotSealed
	}
	if len(b) < headerLen+tagLen {
		return nil, nil, fmt.Errorf("encrypted data is truncated: %d bytes, an envelope has at least %d", len(b), headerLen+tagLen)
	}
	p := b[len(Magic):]
	if p[0] != version {
		return nil, nil, fmt.Errorf("encrypted data has envelope version %d; this hvctl reads version %d", p[0], version)
	}
	if p[1] != kdfArgon2 {
		return nil, nil, fmt.Errorf("encrypted data names key derivation %d; this hvctl knows 1 (argon2id)", p[1])
	}
	h := &Header{Params: Params{Time: binary.BigEndian.Uint32(p[2:6]), MemKiB: binary.BigEndian.Uint32(p[6:10]), Threads: p[10]}}
	if err := h.Params.check(); err != nil {
		return nil, nil, err
	}
	copy(h.Salt[:], p[11:11+saltLen])
	copy(h.Nonce[:], p[11+saltLen:11+saltLen+nonceLen])
	return h, b[headerLen:], nil
}

func (p Params) check() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("encrypted data has argon2 time cost %d, outside 1..%d", p.Time, maxTime)
	case p.MemKiB < minMemKiB || p.MemKiB > maxMemKiB:
		return fmt.Errorf("encrypted data has argon2 memory %d KiB, outside %d..%d", p.MemKiB, minMemKiB, maxMemKiB)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("encrypted data has argon2 parallelism %d, outside 1..%d", p.Threads, maxThreads)
	}
	return nil
}

func (h *Header) bytes() []byte {
	b := make([]byte, 0, headerLen)
	b = append(b, Magic...)
	b = append(b, version, kdfArgon2)
	b = binary.BigEndian.AppendUint32(b, h.Params.Time)
	b = binary.BigEndian.AppendUint32(b, h.Params.MemKiB)
	b = append(b, h.Params.Threads)
	b = append(b, h.Salt[:]...)
	return append(b, h.Nonce[:]...)
}

// Sealer seals and opens envelopes with one passphrase. Keys are
// derived once per salt and kept, so sealing every journal batch costs
// no key derivation: a Sealer seals with the salt of the first envelope
// it opened (or a fresh one).
type Sealer struct {
	pass   []byte
	params Params

	mu    sync.Mutex
	keys  map[[saltLen]byte]cipher.AEAD
	salt  [saltLen]byte
	hasWS bool
}

// New returns a Sealer for passphrase with DefaultParams.
func New(passphrase string) *Sealer { return NewWithParams(passphrase, DefaultParams) }

// NewWithParams returns a Sealer with the given argon2id costs (tests
// use cheaper ones).
func NewWithParams(passphrase string, p Params) *Sealer {
	if err := p.check(); err != nil {
		panic(err)
	}
	return &Sealer{pass: []byte(passphrase), params: p, keys: map[[saltLen]byte]cipher.AEAD{}}
}

func (s *Sealer) aead(salt [saltLen]byte, p Params) (cipher.AEAD, error) {
	if a := s.keys[salt]; a != nil {
		return a, nil
	}
	key := argon2.IDKey(s.pass, salt[:], p.Time, p.MemKiB, p.Threads, keyLen)
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	s.keys[salt] = a
	return a, nil
}

// Seal returns plain sealed in an envelope.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasWS {
		if _, err := rand.Read(s.salt[:]); err != nil {
			return nil, err
		}
		s.hasWS = true
	}
	h := &Header{Params: s.params, Salt: s.salt}
	a, err := s.aead(h.Salt, h.Params)
	if err != nil {
		return nil, err
	}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return nil, err
	}
	hb := h.bytes()
	return a.Seal(hb, h.Nonce[:], plain, hb), nil
}

// Open returns the plaintext of an envelope: ErrNotSealed when b is not
// one, ErrWrongPassphrase when it does not authenticate.
func (s *Sealer) Open(b []byte) ([]byte, error) {
	h, ct, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var a cipher.AEAD
	// The header's parameters are the sealer's or cheaper-to-check
	// ones that were written by hvctl: derive with what the header says.
	if a, err = s.aead(h.Salt, h.Params); err != nil {
		return nil, err
	}
	plain, err := a.Open(nil, h.Nonce[:], ct, b[:headerLen])
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	if !s.hasWS && h.Params == s.params {
		s.salt, s.hasWS = h.Salt, true
	}
	return plain, nil
}
