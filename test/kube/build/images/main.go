// Command kube-image turns a root file system directory into a single-layer linux/amd64 image
// written as a docker-save tarball, which `ctr images import` loads into a node's containerd.
// The test rig has no Docker and no registry, so every image it runs is built this way.
//
//	kube-image -root DIR -tag shoal.local/shoal:dev -out shoal.tar -entrypoint /shoal -user 65532
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kube-image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("kube-image", flag.ContinueOnError)
	root := fs.String("root", "", "root file system directory (required)")
	tag := fs.String("tag", "", "image name, e.g. shoal.local/shoal:dev (required)")
	out := fs.String("out", "", "docker-save tarball to write (required)")
	user := fs.String("user", "", "user the container runs as (uid[:gid])")
	workdir := fs.String("workdir", "", "working directory")
	rootOwned := fs.Bool("root-owned", false, "store every file as owned by uid/gid 0 (for assembled roots)")
	var entrypoint, cmd, env, exclude list
	fs.Var(&entrypoint, "entrypoint", "entrypoint word (repeat)")
	fs.Var(&cmd, "cmd", "cmd word (repeat)")
	fs.Var(&env, "env", "KEY=VALUE (repeat)")
	fs.Var(&exclude, "exclude", "tar --exclude pattern relative to the root, e.g. ./srv/* (repeat)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *root == "" || *tag == "" || *out == "" {
		return errors.New("-root, -tag and -out are required")
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		return fmt.Errorf("parse tag %q: %w", *tag, err)
	}

	// GNU tar keeps hard links, modes, owners and symlinks exactly as debootstrap left them;
	// pseudo file systems the runtime mounts itself are left out.
	layerTar := *out + ".layer.tar"
	defer os.Remove(layerTar)
	tarArgs := []string{"--create", "--file", layerTar, "--numeric-owner", "--xattrs", "--directory", *root,
		"--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*"}
	if *rootOwned {
		tarArgs = append(tarArgs, "--owner=0", "--group=0")
	}
	for _, e := range exclude {
		tarArgs = append(tarArgs, "--exclude="+e)
	}
	tarArgs = append(tarArgs, ".")
	if b, err := exec.Command("tar", tarArgs...).CombinedOutput(); err != nil {
		return fmt.Errorf("tar %s: %w: %s", *root, err, b)
	}
	layer, err := tarball.LayerFromFile(layerTar, tarball.WithCompressionLevel(1))
	if err != nil {
		return fmt.Errorf("layer from %s: %w", layerTar, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config = v1.Config{
		Entrypoint: entrypoint, Cmd: cmd, User: *user, WorkingDir: *workdir,
		Env: append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...),
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	tmp := *out + ".tmp"
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	return os.Rename(tmp, *out)
}
