package pulumiprov

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
)

// Serve runs the provider as the engine starts a plugin: engine is the
// engine's address ("" to be attached to), the chosen port is written to
// stdout, and Serve returns when the engine is done (ctx cancelled: the
// engine sends SIGINT) or its health check fails.
func Serve(ctx context.Context, engine string, stdout io.Writer, clusters Clusters, version string, environ []string) error {
	var host *provider.HostClient
	if engine != "" {
		var err error
		if host, err = provider.NewHostClient(engine); err != nil {
			return fmt.Errorf("could not connect to the Pulumi engine at %s: %w", engine, err)
		}
		defer host.Close()
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		if err := rpcutil.Healthcheck(ctx, engine, 5*time.Minute, cancel); err != nil {
			return fmt.Errorf("could not watch the Pulumi engine's health: %w", err)
		}
	}
	stop := make(chan bool)
	go func() { <-ctx.Done(); close(stop) }()
	p := New(clusters, host, version, environ)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterResourceProviderServer(srv, p)
			return nil
		},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d\n", handle.Port)
	return <-handle.Done
}

// PluginName is the plugin binary's name the engine looks for.
const PluginName = "pulumi-resource-hvctl"

// Install writes dir/pulumi-resource-hvctl, a wrapper running exe's
// pulumi-provider verb, and returns its path. Put dir on PATH for the
// Pulumi CLI, or `pulumi plugin install resource hvctl VERSION -f` it.
func Install(dir, exe string) (string, error) {
	exe, err := filepath.Abs(exe)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, PluginName)
	script := fmt.Sprintf("#!/bin/sh\n# Written by hvctl pulumi install: the Pulumi engine starts this plugin.\nexec %s pulumi-provider \"$@\"\n", shellQuote(exe))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(script), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return path, nil
}

func shellQuote(s string) string {
	out := "'"
	for _, r := range s {
		if r == '\'' {
			out += `'\''`
		} else {
			out += string(r)
		}
	}
	return out + "'"
}
