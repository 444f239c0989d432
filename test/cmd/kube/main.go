// Command kube starts and stops the Kubernetes test rig (test/kube) for humans and the Makefile:
//
//	go run ./test/cmd/kube up          # three nodes; prints the admin kubeconfig path
//	go run ./test/cmd/kube kubeconfig  # the admin kubeconfig path of the running rig
//	go run ./test/cmd/kube down        # stop everything and undo the host changes
//	go run ./test/cmd/kube bindir      # where kubectl and helm are
//	go run ./test/cmd/kube lose-node NODE     # kill NODE's kubelet, containerd and pods; drop its packets
//	go run ./test/cmd/kube restore-node NODE  # lift the cut and start its containerd and kubelet again
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/shoal-db/shoal/test/kube"
)

func main() {
	fs := flag.NewFlagSet("kube", flag.ExitOnError)
	dir := fs.String("dir", kube.DefaultDir, "state directory of the rig")
	nodes := fs.Int("nodes", 3, "number of nodes (1-9)")
	noShoal := fs.Bool("no-shoal-image", false, "do not build and import "+kube.ShoalImage)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: kube [flags] up|down|kubeconfig|bindir|lose-node NODE|restore-node NODE\n")
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:])
	want := 1
	if fs.Arg(0) == "lose-node" || fs.Arg(0) == "restore-node" {
		want = 2
	}
	if fs.NArg() != want {
		fs.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch fs.Arg(0) {
	case "up":
		var c *kube.Cluster
		c, err = kube.Start(ctx, kube.Options{Dir: *dir, Nodes: *nodes, NoShoalImage: *noShoal, Log: log})
		if err == nil {
			fmt.Println(c.Kubeconfig)
			fmt.Fprintf(os.Stderr, "export KUBECONFIG=%s; kubectl and helm are in %s\n", c.Kubeconfig, strings.TrimSuffix(kube.Bin("kubectl"), "/kubectl"))
		}
	case "down":
		err = kube.Down(ctx, *dir, log)
		if left := kube.Leftovers(*dir); err == nil && len(left) > 0 {
			err = fmt.Errorf("left after down:\n%s", strings.Join(left, "\n"))
		}
	case "kubeconfig":
		path := kube.KubeconfigPath(*dir)
		if _, err = os.Stat(path); err == nil {
			fmt.Println(path)
		}
	case "bindir":
		fmt.Println(filepath.Dir(kube.Bin("kubectl")))
	case "lose-node", "restore-node":
		err = nodeFault(ctx, *dir, fs.Arg(0), fs.Arg(1))
	default:
		fs.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube:", err)
		os.Exit(1)
	}
}

// nodeFault loses or restores a node of the rig another process started, as the tests' LoseNode
// and RestoreNode do (the demo's scenes are shell).
func nodeFault(ctx context.Context, dir, op, name string) error {
	c, err := kube.Attach(dir)
	if err != nil {
		return err
	}
	n, err := c.Node(name)
	if err != nil {
		return err
	}
	if op == "lose-node" {
		return c.LoseNode(ctx, n)
	}
	return c.RestoreNode(ctx, n)
}
