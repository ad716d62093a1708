# s3mesh — every target fetches and builds what it needs itself.
GO       ?= go
BIN      := $(CURDIR)/bin
export CGO_ENABLED ?= 0

.PHONY: all build tools lab test bench clean images

all: build

## tools: versitygw and nats-server, pinned as Go tool dependencies in go.mod
tools: $(BIN)/versitygw $(BIN)/nats-server

$(BIN)/versitygw: go.mod go.sum
	$(GO) build -o $(BIN)/versitygw github.com/versity/versitygw/cmd/versitygw

$(BIN)/nats-server: go.mod go.sum
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

build: tools
	$(GO) build -o $(BIN)/s3mesh ./cmd/s3mesh

## lab: three sites on loopback (Ctrl-C stops everything)
lab: build
	$(BIN)/s3mesh lab --sites 3 --dir .lab

## test: unit + integration tests against real versitygw and NATS
test: build
	$(GO) vet ./...
	TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) .lab

## bench: a fresh lab of its own; lag and throughput next to raw S3 baselines
bench: build
	$(BIN)/s3mesh bench all

## soak: the mixed workload under rotating faults (cut link, killed agent,
## stopped S3, killed broker) on a lab of its own, then the no-silent-loss
## checker. SOAK sets the duration (default 5m), e.g. `make soak SOAK=10m`.
.PHONY: soak
soak: build
	S3MESH_SOAK=$${SOAK:-5m} $(GO) test -tags soak -count=1 -timeout 2h -run TestSoak -v ./integration/

## images: s3mesh:local, FROM scratch, with the static linux binaries of
## s3mesh, versitygw and nats-server (the versions pinned in go.mod). Nothing
## is pulled. IMAGE overrides the tag.
IMAGE   ?= s3mesh:local
IMGCTX  := $(BIN)/image
images:
	rm -rf $(IMGCTX) && mkdir -p $(IMGCTX)/dirs/tmp $(IMGCTX)/dirs/data $(IMGCTX)/dirs/state
	chmod 1777 $(IMGCTX)/dirs/tmp
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/s3mesh ./cmd/s3mesh
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/versitygw github.com/versity/versitygw/cmd/versitygw
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/nats-server github.com/nats-io/nats-server/v2
	cp docker/Dockerfile $(IMGCTX)/Dockerfile
	docker build --pull=false -t $(IMAGE) $(IMGCTX)
