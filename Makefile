# Thauth — the one entry point for building, running and testing. CI calls the same targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/thauth

.PHONY: build run test test-short bench lint clean

build: ## build bin/thauth and bin/thauth-loadgen
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/thauth
	$(GO) build -o bin/thauth-loadgen ./cmd/thauth-loadgen

run: build ## run Thauth on 127.0.0.1:8080 with the embedded SQLite database in ./thauth-data
	$(BIN) serve --addr 127.0.0.1:8080 --data-dir ./thauth-data

test: ## run every test (starts the services the tests need)
	./scripts/test.sh

test-short: ## unit tests only, no race detector, no external services
	$(GO) test ./...

bench: ## benchmarks: engine, store, apply, and the HTTP load generator against a baseline
	./scripts/bench.sh

lint:
	$(GO) vet ./...
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)

clean:
	rm -rf bin
