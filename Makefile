# s3mesh — every target fetches and builds what it needs itself.
GO       ?= go
BIN      := $(CURDIR)/bin
export CGO_ENABLED ?= 0

.PHONY: all build tools lab test bench clean images

all: build

## tools: versitygw and nats-server, pinned as Go tool dependencies in go.mod;
## rclone (a second S3 implementation for the lab and tests: `rclone serve s3`),
## pinned in a module of its own, tools/rclone, so that its many dependencies
## stay out of s3mesh's go.mod.
tools: $(BIN)/versitygw $(BIN)/nats-server $(BIN)/rclone

$(BIN)/versitygw: go.mod go.sum
	$(GO) build -o $(BIN)/versitygw github.com/versity/versitygw/cmd/versitygw

$(BIN)/nats-server: go.mod go.sum
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2

$(BIN)/rclone: tools/rclone/go.mod tools/rclone/go.sum
	cd tools/rclone && $(GO) build -trimpath -o $(BIN)/rclone github.com/rclone/rclone

## stores: MinIO and SeaweedFS (`weed server -s3`), two more S3 servers for
## the mixed-store lab (`s3mesh lab --stores minio,seaweedfs,versitygw`) and
## TestMinioSeaweedLab. Each is pinned in a tools module of its own
## (tools/minio, tools/seaweedfs). They are large builds (about 8 minutes of
## 2 cores, once: bin/ keeps them; docs/stores.md), so they are not
## prerequisites of tools, build or lab, only of test.
.PHONY: stores
stores: $(BIN)/minio $(BIN)/minio-users $(BIN)/weed

$(BIN)/minio: tools/minio/go.mod tools/minio/go.sum
	cd tools/minio && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/minio github.com/minio/minio

# minio-users makes the lab's read-only MinIO users for peers (MinIO's admin
# API, through madmin-go, which the pinned MinIO already requires).
$(BIN)/minio-users: tools/minio/go.mod tools/minio/go.sum tools/minio/users/main.go
	cd tools/minio && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/minio-users ./users

$(BIN)/weed: tools/seaweedfs/go.mod tools/seaweedfs/go.sum
	cd tools/seaweedfs && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/weed github.com/seaweedfs/seaweedfs/weed

build: tools
	$(GO) build -o $(BIN)/s3mesh ./cmd/s3mesh

## lab: three sites on loopback (Ctrl-C stops everything)
lab: build
	$(BIN)/s3mesh lab --sites 3 --dir .lab

## test: the cheap checks first (they fail fast), then the race detector on
## the packages that start no child process of their own, then every unit and
## integration test against real versitygw, rclone, MinIO, SeaweedFS and NATS.
test: check deploy-check build stores race chromium
	TESTCONTAINERS_RYUK_DISABLED=true $(GO) test -count=1 -timeout 20m ./...

## check: gofmt, go mod tidy, go vet and the layering test; each failure says
## what to run to fix it.
.PHONY: check fmt tidy vet layering race
check: fmt tidy vet layering

GOFMT ?= $(shell $(GO) env GOROOT)/bin/gofmt

fmt:
	@files=$$( { git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*' -not -path './.lab/*'; } | \
		while read -r f; do [ ! -f "$$f" ] || echo "$$f"; done); \
	[ -n "$$files" ] || { echo "make test: found no .go files to check with gofmt"; exit 1; }; \
	bad=$$($(GOFMT) -l $$files) || { echo "make test: gofmt could not parse the files above"; exit 1; }; \
	if [ -n "$$bad" ]; then \
		echo "make test: gofmt would reformat:"; echo "$$bad" | sed 's/^/  /'; \
		echo "fix: gofmt -w" $$bad; exit 1; \
	fi

tidy:
	@diff=$$($(GO) mod tidy -diff) || { \
		printf '%s\n' "$$diff" | head -n 60; \
		echo "make test: go.mod/go.sum are not what go mod tidy makes them (diff above, first 60 lines)"; \
		echo "fix: go mod tidy, then commit go.mod and go.sum"; exit 1; }

vet:
	@$(GO) vet ./... || { echo "make test: go vet found the problems above; fix them and rerun: go vet ./..."; exit 1; }

layering:
	@$(GO) test -count=1 ./internal/layering/ || { \
		echo "make test: an import breaks the layering (above); remove it, or change the rule in internal/layering/layering_test.go"; \
		echo "rerun: go test ./internal/layering/"; exit 1; }

## deploy-check: the alert rules (deploy/prometheus) and the Grafana dashboard
## (deploy/grafana) parsed with Prometheus' own parsers, every metric they name
## one the agent exports. deploy/check is a module of its own, so Prometheus
## stays out of s3mesh's go.mod.
.PHONY: deploy-check
deploy-check:
	@cd deploy/check && { $(GO) mod tidy -diff >/dev/null || { echo "make test: deploy/check/go.mod is not tidy; fix: cd deploy/check && go mod tidy"; exit 1; }; } && \
		$(GO) vet ./... && $(GO) test -count=1 ./... || { echo "make test: deploy/check failed (above); rerun: cd deploy/check && go test ./..."; exit 1; }

## race: go test -race on the pure and in-process packages (producer's tests
## embed NATS in-process; verify's start versitygw children but take seconds,
## so verify is in too). The race detector needs cgo,
## so this step alone sets CGO_ENABLED=1 (every binary stays static) and
## needs a C compiler with libc headers: if none works and we are root on
## Debian/Ubuntu, it installs gcc and libc6-dev with apt-get.
RACE_PKGS := ./schema/... ./lifecycle/... ./state/... ./consumer/... ./producer/... ./config/... ./verify/...

race:
	@cc=$$(CGO_ENABLED=1 $(GO) env CC); \
	probe() { printf '#include <stdlib.h>\nint main(void){return 0;}\n' | $$cc -x c -o /dev/null - >/dev/null 2>&1; }; \
	if ! probe; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "make test: go test -race needs a C compiler and there is none ($$cc); installing gcc and libc6-dev"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; \
		fi; \
		probe || { echo "make test: go test -race needs cgo and a working C compiler ($$cc cannot build a C program)"; \
			echo "fix: install one, e.g. apt-get install gcc libc6-dev (or set CC)"; exit 1; }; \
	fi
	@CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(RACE_PKGS) || { \
		echo "make test: go test -race failed (above); rerun: CGO_ENABLED=1 go test -race $(RACE_PKGS)"; exit 1; }

## chromium: the dashboard's browser test (integration/dashboard_test.go)
## drives Debian's chromium; if it is not on PATH and we are root with
## apt-get, it is installed, otherwise make stops and says what to install.
.PHONY: chromium
chromium:
	@if ! command -v chromium >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "make test: the dashboard test needs chromium and there is none on PATH; installing it with apt-get"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		fi; \
		command -v chromium >/dev/null || { echo "make test: the dashboard test (integration/dashboard_test.go) needs chromium on PATH"; \
			echo "fix: install it, e.g. apt-get install chromium"; exit 1; }; \
	fi

clean:
	rm -rf $(BIN) .lab

## bench: a fresh lab of its own; every figure against a baseline measured in
## the same run (docs/PERFORMANCE.md). S3MESH_BENCH_* knobs: `bin/s3mesh bench --help`.
## rclone, the baseline of the catch-up, scan and rebuild figures, is the pinned
## bin/rclone that build makes.
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
	rm -rf $(IMGCTX) && mkdir -p $(IMGCTX)/dirs/tmp $(IMGCTX)/dirs/data $(IMGCTX)/dirs/state $(IMGCTX)/dirs/iam
	chmod 1777 $(IMGCTX)/dirs/tmp
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/s3mesh ./cmd/s3mesh
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/versitygw github.com/versity/versitygw/cmd/versitygw
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-s -w" -o $(IMGCTX)/nats-server github.com/nats-io/nats-server/v2
	cp docker/Dockerfile $(IMGCTX)/Dockerfile
	docker build --pull=false -t $(IMAGE) $(IMGCTX)
