package provision

import (
	"reflect"
	"strings"
	"testing"
)

func FuzzDecodeJournal(f *testing.F) {
	a, _ := appendFrame(nil, put(1, "site.s.node.a", StatusPending))
	b, _ := appendFrame(nil, &Record{Serial: 2, Lineage: "L", Op: OpRemove, Address: "site.s.node.a", Generation: 1})
	for _, seed := range [][]byte{
		nil, a, cat(a, b), cat(a, b[:len(b)-3]), cat(a, make([]byte, 12)),
		rawFrame([]byte(`{"serial":1,"lineage":"L","op":"put","resource":{"address":"x","status":"ready","attrs":{"n":1.5,"l":[1,"a"]}}}`)),
		rawFrame([]byte(`{"serial":1,"lineage":"L","op":"remove","address":"x","generation":-1}`)),
		rawFrame([]byte(`null`)), rawFrame([]byte(`[]`)), {0, 0, 0, 1, 0, 0, 0, 0, 'x'},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		recs, valid, err := DecodeJournal("/x/state.json.journal", in)
		if valid < 0 || valid > len(in) {
			t.Fatalf("valid = %d of %d bytes", valid, len(in))
		}
		if err != nil {
			if !strings.Contains(err.Error(), "/x/state.json.journal") || !strings.Contains(err.Error(), "byte ") {
				t.Errorf("error does not name the file and offset: %v", err)
			}
			return
		}
		// The valid prefix decodes to the same records, and they encode
		// and decode again to themselves.
		again, n, err := DecodeJournal("j", in[:valid])
		if err != nil || n != valid || len(again) != len(recs) {
			t.Fatalf("prefix: %d records, %d bytes, %v; want %d records, %d bytes", len(again), n, err, len(recs), valid)
		}
		var enc []byte
		for _, r := range recs {
			if enc, err = appendFrame(enc, r); err != nil {
				t.Fatal(err)
			}
		}
		round, _, err := DecodeJournal("j", enc)
		if err != nil || !reflect.DeepEqual(round, recs) {
			t.Fatalf("round trip: %v\n got %#v\nwant %#v", err, round, recs)
		}
		s := NewState()
		s.Lineage = "L"
		if err := replay("j", s, recs); err == nil {
			for i := 1; i < len(s.Resources); i++ {
				if !lessAddr(s.Resources[i-1].Address, s.Resources[i].Address) {
					t.Fatalf("replayed resources out of order: %s, %s", s.Resources[i-1].Address, s.Resources[i].Address)
				}
			}
		}
	})
}
