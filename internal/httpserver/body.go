package httpserver

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/thauth/thauth"
)

// Body limits. JSON bodies of the machine API are at most 1 MiB (spec §4). A configuration
// document may be much larger (a document listing 100,000 subjects is tens of MiB), so PUT
// config gets its own limit.
const (
	maxJSONBody   = 1 << 20
	maxConfigBody = 32 << 20
)

// Media types of the configuration document.
const (
	mediaJSON = "application/json"
	mediaYAML = "application/yaml"
)

// mediaType returns the lower-cased media type of a Content-Type value, rejecting a charset
// other than UTF-8. It returns "" for a missing or unparsable value.
func mediaType(ct string) string {
	switch ct {
	case "application/json", "application/json; charset=utf-8", "application/json;charset=utf-8", "application/json; charset=UTF-8":
		return mediaJSON // the common cases, without parsing
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	for k, v := range params {
		if k != "charset" || !strings.EqualFold(v, "utf-8") {
			return ""
		}
	}
	return mt
}

// yamlMedia reports whether mt is one of the YAML media types we accept.
func yamlMedia(mt string) bool {
	return mt == "application/yaml" || mt == "application/x-yaml" || mt == "text/yaml" || mt == "text/x-yaml"
}

var (
	errNotJSON  = thauth.Errorf(thauth.EUnsupported, "Content-Type must be application/json")
	errTooLarge = thauth.Errorf(thauth.ETooLarge, "request body is larger than 1 MiB")
)

// requireJSON checks that the request declares a JSON body.
func requireJSON(r *http.Request) error {
	if mediaType(r.Header.Get("Content-Type")) != mediaJSON {
		return errNotJSON
	}
	return nil
}

// readJSONBody is requireJSON then readBody with the JSON limit: the common start of every
// handler that takes a JSON body.
func readJSONBody(r *http.Request, bp *[]byte) ([]byte, error) {
	if err := requireJSON(r); err != nil {
		return nil, err
	}
	return readBody(r, maxJSONBody, bp)
}

// readBody reads the whole body, at most limit bytes, into *bp (a pooled buffer that the
// caller returns). A larger body is ETooLarge.
func readBody(r *http.Request, limit int64, bp *[]byte) ([]byte, error) {
	tooLarge := errTooLarge
	if limit != maxJSONBody {
		tooLarge = thauth.Errorf(thauth.ETooLarge, "request body is larger than %d MiB", limit>>20)
	}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	buf := (*bp)[:0]
	if r.ContentLength > 0 && int64(cap(buf)) < r.ContentLength+1 {
		buf = make([]byte, 0, r.ContentLength+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		*bp = buf
		if int64(len(buf)) > limit {
			return nil, tooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge
			}
			return nil, thauth.Errorf(thauth.EInvalid, "could not read the request body")
		}
	}
}
