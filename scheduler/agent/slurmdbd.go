package agent

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hvctl/hvctl/provision"
	"github.com/hvctl/hvctl/scheduler/slurm"
)

// dbPort is the MariaDB port slurmdbd stores into, on 127.0.0.1 of the
// controller (in the controller's own network namespace on the local
// provider): away from 3306, which a machine may already use.
const dbPort = 6833

// dbUser is the MariaDB user slurmdbd connects as; its password is
// derived from the munge key (dbPassword).
const dbUser = "slurm"

// dbPassword derives slurmdbd's database password from the cluster's
// munge key: only the controller, which holds the key, knows it. It is
// written only to slurmdbd.conf (mode 0600).
func dbPassword(mungeKey []byte) (string, error) {
	k, err := hkdf.Key(sha256.New, mungeKey, nil, "hvctl slurmdbd database password", 24)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// startAccounting runs SLURM's accounting on the controller, before
// slurmctld: a MariaDB server (data in slurm/db), slurmdbd against it,
// and the cluster registered with sacctmgr. An agent restart finds them
// running and keeps them.
func (n *slurmNode) startAccounting(ctx context.Context) error {
	for _, bin := range []string{"mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "sacctmgr"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s is not installed (Debian: apt-get install mariadb-server slurmdbd)", bin)
		}
	}
	data := filepath.Join(n.dir, "db")
	sock := filepath.Join(n.short, "run", "mariadb.sock")
	pid := filepath.Join(n.dir, "run", "mariadb.pid")
	logf := filepath.Join(n.dir, "log", "mariadb.log")
	// Small: a cluster's job records, not a database server's load.
	opts := []string{"--datadir=" + data, "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"}
	if _, err := os.Stat(filepath.Join(data, "mysql")); err != nil {
		os.RemoveAll(data) // a half-made one from an earlier attempt
		if err := os.MkdirAll(data, 0o700); err != nil {
			return err
		}
		args := append([]string{"--no-defaults", "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"}, opts...)
		out, err := exec.CommandContext(ctx, "mariadb-install-db", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mariadb-install-db: %v: %s", err, lastLines(out, 5))
		}
	}
	args := append([]string{"--no-defaults", "--user=root", "--socket=" + sock, "--pid-file=" + pid,
		"--port=" + strconv.Itoa(dbPort), "--bind-address=127.0.0.1", "--skip-name-resolve", "--log-error=" + logf}, opts...)
	if err := n.background(ctx, pid, logf, "mariadbd", args...); err != nil {
		return err
	}
	if err := waitFile(ctx, sock, 60*time.Second); err != nil {
		return fmt.Errorf("mariadbd: %w (log %s)", err, logf)
	}
	pass, err := dbPassword(n.setup.MungeKey)
	if err != nil {
		return err
	}
	sql := "CREATE DATABASE IF NOT EXISTS slurm_acct_db;\n" +
		"CREATE USER IF NOT EXISTS '" + dbUser + "'@'127.0.0.1' IDENTIFIED BY '" + pass + "';\n" +
		"ALTER USER '" + dbUser + "'@'127.0.0.1' IDENTIFIED BY '" + pass + "';\n" +
		"GRANT ALL ON slurm_acct_db.* TO '" + dbUser + "'@'127.0.0.1';\n"
	cmd := exec.CommandContext(ctx, "mariadb", "--no-defaults", "--user=root", "--socket="+sock)
	cmd.Stdin = strings.NewReader(sql) // not on the command line: ps would show the password
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create the slurmdbd user: %v: %s", err, lastLines(out, 5))
	}
	host, err := os.Hostname()
	if err != nil {
		return err
	}
	host, _, _ = strings.Cut(host, ".")
	dbd, err := slurm.DbdConf(slurm.DbdInput{Host: host, LogFile: filepath.Join(n.short, "log", "slurmdbd.log"),
		PidFile: filepath.Join(n.short, "run", "slurmdbd.pid"), MungeSocket: filepath.Join(n.pub, "munge", "munge.socket"),
		StorageHost: "127.0.0.1", StoragePort: dbPort, StorageUser: dbUser, StoragePass: pass})
	if err != nil {
		return err
	}
	// slurmdbd reads slurmdbd.conf beside SLURM_CONF; it must be 0600.
	dbdConf := filepath.Join(n.dir, "slurmdbd.conf")
	if err := provision.WriteFileAtomic(dbdConf, []byte(dbd)); err != nil {
		return err
	}
	if err := os.Chmod(dbdConf, 0o600); err != nil {
		return err
	}
	if err := n.daemon(ctx, filepath.Join(n.dir, "run", "slurmdbd.pid"), "slurmdbd"); err != nil {
		return err
	}
	// slurmdbd answers once it has made its tables.
	name := n.setup.ClusterName
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := slurmCmd(n.conf, "sacctmgr", "-n", "-P", "list", "cluster", "format=cluster")
		if err == nil {
			if containsLine(out, name) {
				break
			}
			if _, err = slurmCmd(n.conf, "sacctmgr", "-i", "add", "cluster", name); err == nil {
				n.a.log.Printf("slurm accounting: cluster %s registered with slurmdbd", name)
				break
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("register cluster %s: %v (logs in %s)", name, err, filepath.Join(n.dir, "log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	n.a.log.Printf("slurm accounting: mariadbd on 127.0.0.1:%d, slurmdbd on port %d", dbPort, slurm.DefaultDbdPort)
	return nil
}

// background starts a program that stays in the foreground (mariadbd)
// in a session of its own, unless its pid file names a live process;
// stop stops it like the daemons.
func (n *slurmNode) background(ctx context.Context, pidFile, logFile, name string, args ...string) error {
	n.mu.Lock()
	n.pids = append(n.pids, pidFile)
	n.mu.Unlock()
	if pid := readPid(pidFile); pid > 0 && syscall.Kill(pid, 0) == nil {
		return nil
	}
	f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go cmd.Wait()
	if err := waitFile(ctx, pidFile, 60*time.Second); err != nil {
		return fmt.Errorf("start %s: %w (log %s)", name, err, logFile)
	}
	return nil
}

func containsLine(out []byte, want string) bool {
	for _, l := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(l) == want {
			return true
		}
	}
	return false
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// jobs reads SLURM's accounting (manager.Config.SlurmJobs).
func (h *slurmHub) jobs() ([]slurm.AcctJob, error) {
	conf := h.confPath()
	if conf == "" {
		return nil, errors.New("slurmctld is not running yet")
	}
	out, err := slurmCmd(conf, "sacct", slurm.SacctArgs...)
	if err != nil {
		return nil, err
	}
	return slurm.ParseSacct(out, time.Local)
}
