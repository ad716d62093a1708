# s3mesh — every target fetches and builds what it needs itself.
GO       ?= go
BIN      := $(CURDIR)/bin
export CGO_ENABLED ?= 0

.PHONY: all build tools lab test bench clean

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
	$(GO) test -count=1 -timeout 20m ./...

clean:
	rm -rf $(BIN) .lab

## bench: a fresh lab of its own; lag and throughput next to raw S3 baselines
bench: build
	$(BIN)/s3mesh bench all
