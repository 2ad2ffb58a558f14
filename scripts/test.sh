#!/usr/bin/env bash
# Runs every test of the repository: formatting and vet, then the whole suite under the race
# detector (fuzz seed corpora included).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l . | grep -v '^\.' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 20m ./...
