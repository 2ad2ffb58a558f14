package serve

import (
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	if ps := Defaults().Validate(); ps != nil {
		t.Fatalf("defaults are invalid: %v", ps)
	}
	c := Config{Addr: "nope", SyncInterval: time.Nanosecond, KeyUsageFlushInterval: time.Second,
		ShutdownTimeout: -time.Second, ReadHeaderTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 1}
	var fields []string
	for _, p := range c.Validate() {
		fields = append(fields, p.Field)
	}
	want := []string{"Addr", "DataDir", "SyncInterval", "ShutdownTimeout", "MaxHeaderBytes"}
	if d := cmp.Diff(want, fields); d != "" {
		t.Errorf("problem fields (-want +got):\n%s", d)
	}
}

func TestExposed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": false, "[::1]:8080": false, "127.0.0.2:1": false,
		"0.0.0.0:8080": true, "[::]:8080": true, "192.168.1.10:8080": true,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := exposed(a); got != want {
			t.Errorf("exposed(%s) = %v, want %v", addr, got, want)
		}
	}
}
