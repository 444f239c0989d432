// Wrapper module for the image builder of the Kubernetes test rig (no Docker, no registry):
// go-containerregistry stays out of the main module (a nested go.mod).
module github.com/shoal-db/shoal/test/kube/build/images

go 1.26.0

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
