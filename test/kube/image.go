package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildShoalImage builds shoal.local/shoal:dev from the current source (CGO_ENABLED=0 go build
// ./cmd/shoal) and returns its docker-save tarball, cached by the binary's hash: a changed binary
// gives a new image, an unchanged one is not rebuilt. The image is distroless-like, one layer:
// /shoal, the host's CA bundle, and /etc/passwd with root and nonroot (65532), run as nonroot.
func BuildShoalImage(ctx context.Context, log *slog.Logger) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	stage, err := os.MkdirTemp("", "shoal-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	bin := filepath.Join(stage, "shoal")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./cmd/shoal")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shoal: %w: %s", err, out)
	}
	sum, err := fileSHA256(bin)
	if err != nil {
		return "", err
	}
	tar := filepath.Join(imageDir(), "shoal-"+sum[:16]+".tar")
	if _, err := os.Stat(tar); err == nil {
		return tar, nil
	}
	log.Info("building image", "name", ShoalImage, "tar", tar)
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nnonroot:x:65532:\n",
	}
	for name, body := range files {
		if err := writeFile(filepath.Join(stage, name), body, 0o644); err != nil {
			return "", err
		}
	}
	certs := filepath.Join(stage, "etc/ssl/certs/ca-certificates.crt")
	if err := copyFile("/etc/ssl/certs/ca-certificates.crt", certs); err != nil {
		return "", fmt.Errorf("CA certificates: %w", err)
	}
	for _, d := range []string{"tmp", "home/nonroot"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(filepath.Join(stage, "tmp"), 0o1777); err != nil {
		return "", err
	}
	if err := os.Chown(filepath.Join(stage, "home/nonroot"), 65532, 65532); err != nil {
		return "", err
	}
	// Directory mode of the stage dir becomes the image's "/".
	if err := os.Chmod(stage, 0o755); err != nil {
		return "", err
	}
	if _, err := output(ctx, Bin("kube-image"), "-root", stage, "-tag", ShoalImage, "-out", tar,
		"-entrypoint", "/shoal", "-user", "65532:65532"); err != nil {
		return "", err
	}
	return tar, nil
}

// moduleRoot is the directory of shoal's go.mod, found upward from the working directory (tests
// run in their package directory, commands wherever the user is).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the shoal module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeFile(path, body string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), mode)
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return writeFile(dst, string(b), 0o644)
}
