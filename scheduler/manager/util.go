package manager

import (
	"fmt"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// BadRequest is a request the manager rejects, naming the field.
type BadRequest struct{ Field, Msg string }

func (e *BadRequest) Error() string { return fmt.Sprintf("bad request: %s: %s", e.Field, e.Msg) }

func parseKey(s string) (wgtypes.Key, error) { return wgtypes.ParseKey(s) }
