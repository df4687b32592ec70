package aws

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	smithylog "github.com/aws/smithy-go/logging"
)

// TestSDKLogger: the SDK's lines become hvctl log records (a warning at
// warn, the rest at debug), never bare "SDK 2026/..." lines on stderr.
func TestSDKLogger(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	defer slog.SetDefault(old)
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	sdkLogger{}.Logf(smithylog.Warn, "falling back to IMDSv%d", 1)
	sdkLogger{}.Logf(smithylog.Debug, "retrying request %s", "RunInstances")
	out := buf.String()
	for _, want := range []string{`level=WARN msg="aws sdk: falling back to IMDSv1"`, `level=DEBUG msg="aws sdk: retrying request RunInstances"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
