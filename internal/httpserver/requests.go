package httpserver

import (
	"strings"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/manage"
)

// Request decoders: one function per body type, on top of jsonDecoder. Each checks the
// structure (known members only, each once, of the right type; required members present;
// strings that must carry a value not empty) and the field rules of spec §4; business rules
// (which role ids exist, what an identifier may contain) stay in manage and the engine.

// maxBatchItems is the largest number of checks in one batch (spec §4).
const maxBatchItems = 1000

// fieldErr builds the 400 for a validation message about field: `field "tenant" must not be
// empty`, or `field "scopes": unknown scope "x"` for messages that are not a predicate.
func fieldErr(field, msg string) error {
	if strings.HasPrefix(msg, "must ") || strings.HasPrefix(msg, "may ") {
		return invalid("field %q %s", field, msg)
	}
	return invalid("field %q: %s", field, msg)
}

// decodeCheck decodes a POST /v1/check body into req and fresh:
// {"subject", "feature", "action", "tenant"?, "resource"?, "explain"?, "at_least_as_fresh"?}.
// fresh receives the freshness token (unchecked); it may be nil to drop it.
func decodeCheck(body string, req *thauth.CheckRequest, fresh *string) error {
	d := jsonDecoder{s: body}
	if err := d.begin(); err != nil {
		return err
	}
	var seen seenSet
	for first := true; ; first = false {
		key, ok, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch key {
		case "subject":
			if err = seen.mark(0, "", key); err == nil {
				req.Subject, err = d.requiredStr(key)
			}
		case "feature":
			if err = seen.mark(1, "", key); err == nil {
				req.Feature, err = d.requiredStr(key)
			}
		case "action":
			if err = seen.mark(2, "", key); err == nil {
				req.Action, err = d.requiredStr(key)
			}
		case "tenant":
			if err = seen.mark(3, "", key); err == nil {
				req.Tenant, _, err = d.optionalStr(key)
			}
		case "resource":
			if err = seen.mark(4, "", key); err == nil {
				req.Resource, _, err = d.optionalStr(key)
			}
		case "explain":
			if err = seen.mark(5, "", key); err == nil {
				req.Explain, err = d.boolean(key)
			}
		case fieldFresh:
			if err = seen.mark(6, "", key); err == nil {
				var tok string
				tok, _, err = d.optionalStr(key)
				if fresh != nil {
					*fresh = tok
				}
			}
		default:
			return unknownField("", key)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case req.Subject == "":
		return missing("subject")
	case req.Feature == "":
		return missing("feature")
	case req.Action == "":
		return missing("action")
	}
	if req.Tenant != "" {
		if msg := thauth.ValidateIdentifier(req.Tenant); msg != "" {
			return fieldErr("tenant", msg)
		}
	}
	if req.Resource != "" {
		if msg := thauth.ValidateResource(req.Resource); msg != "" {
			return fieldErr("resource", msg)
		}
	}
	return nil
}

// batchRequest is a decoded POST /v1/check/batch body.
type batchRequest struct {
	Subject string
	Tenant  string
	Fresh   string // at_least_as_fresh, unchecked
	Checks  []batchItem
}

type batchItem struct {
	Feature  string
	Action   string
	Resource string
}

// decodeBatch decodes {"subject", "tenant"?, "at_least_as_fresh"?,
// "checks": [{"feature", "action", "resource"?}]}
// with 1 to maxBatchItems checks.
func decodeBatch(body string, req *batchRequest) error {
	d := jsonDecoder{s: body}
	if err := d.begin(); err != nil {
		return err
	}
	var seen seenSet
	checksGiven := false
	for first := true; ; first = false {
		key, ok, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch key {
		case "subject":
			if err = seen.mark(0, "", key); err == nil {
				req.Subject, err = d.requiredStr(key)
			}
		case "tenant":
			if err = seen.mark(1, "", key); err == nil {
				req.Tenant, _, err = d.optionalStr(key)
			}
		case "checks":
			if err = seen.mark(2, "", key); err == nil {
				checksGiven, err = d.batchItems(req)
			}
		case fieldFresh:
			if err = seen.mark(3, "", key); err == nil {
				req.Fresh, _, err = d.optionalStr(key)
			}
		default:
			return unknownField("", key)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case req.Subject == "":
		return missing("subject")
	case !checksGiven:
		return missing("checks")
	case len(req.Checks) == 0:
		return invalid("field \"checks\" must contain at least 1 check")
	}
	if req.Tenant != "" {
		if msg := thauth.ValidateIdentifier(req.Tenant); msg != "" {
			return fieldErr("tenant", msg)
		}
	}
	return nil
}

func (d *jsonDecoder) batchItems(req *batchRequest) (present bool, err error) {
	present, err = d.openArray("checks")
	if !present || err != nil {
		return false, err
	}
	req.Checks = make([]batchItem, 0, 8)
	for first := true; ; first = false {
		more, err := d.nextElem(first)
		if err != nil {
			return false, err
		}
		if !more {
			return true, nil
		}
		if len(req.Checks) == maxBatchItems {
			return false, invalid("field \"checks\" must contain at most %d checks", maxBatchItems)
		}
		req.Checks = append(req.Checks, batchItem{})
		if err := d.batchItem(len(req.Checks)-1, &req.Checks[len(req.Checks)-1]); err != nil {
			return false, err
		}
	}
}

func (d *jsonDecoder) batchItem(i int, it *batchItem) error {
	switch d.peek() {
	case '{':
		d.i++
	case 'n':
		if err := d.literal("null"); err != nil {
			return err
		}
		return invalid("field %q must be an object, not null", indexed("checks", i))
	default:
		return d.typeErr(indexed("checks", i), "an object")
	}
	var seen seenSet
	for first := true; ; first = false {
		key, ok, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		var bit uint
		switch key {
		case "feature":
			bit = 0
		case "action":
			bit = 1
		case "resource":
			bit = 2
		default:
			return unknownField(itemPrefix(i), key)
		}
		if seen.has(bit) {
			return duplicate(itemPrefix(i), key)
		}
		_ = seen.mark(bit, "", key)
		s, err := d.itemStr(i, key, bit != 2)
		if err != nil {
			return err
		}
		switch bit {
		case 0:
			it.Feature = s
		case 1:
			it.Action = s
		case 2:
			it.Resource = s
		}
	}
	switch {
	case it.Feature == "":
		return missing(itemPrefix(i) + "feature")
	case it.Action == "":
		return missing(itemPrefix(i) + "action")
	}
	if it.Resource != "" {
		if msg := thauth.ValidateResource(it.Resource); msg != "" {
			return fieldErr(itemPrefix(i)+"resource", msg)
		}
	}
	return nil
}

// itemPrefix is the path prefix of batch item i: "checks[3]."; it is built only for errors.
func itemPrefix(i int) string { return indexed("checks", i) + "." }

// itemStr reads string member key of batch item i.
func (d *jsonDecoder) itemStr(i int, key string, required bool) (string, error) {
	switch d.peek() {
	case '"':
		s, err := d.rawString()
		if err == nil && s == "" {
			err = empty(itemPrefix(i) + key)
		}
		return s, err
	case 'n':
		if err := d.literal("null"); err != nil {
			return "", err
		}
		if required {
			return "", missing(itemPrefix(i) + key)
		}
		return "", nil
	}
	return "", d.typeErr(itemPrefix(i)+key, "a string")
}

// decodeUpsert decodes a POST /v1/subjects/upsert body:
// {"subject_id", "subject_type", "tenant_id"?, "role_ids"?, "permissions"?}. An absent (or
// null) role_ids or permissions leaves that kind of grant alone; [] removes them all.
func decodeUpsert(body string, req *manage.UpsertRequest) error {
	d := jsonDecoder{s: body}
	if err := d.begin(); err != nil {
		return err
	}
	var seen seenSet
	for first := true; ; first = false {
		key, ok, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch key {
		case "subject_id":
			if err = seen.mark(0, "", key); err == nil {
				req.SubjectID, err = d.requiredStr(key)
			}
		case "subject_type":
			if err = seen.mark(1, "", key); err == nil {
				req.SubjectType, err = d.requiredStr(key)
			}
		case "tenant_id":
			if err = seen.mark(2, "", key); err == nil {
				var t string
				var present bool
				if t, present, err = d.optionalStr(key); err == nil && present {
					req.TenantID = &t
				}
			}
		case "role_ids":
			if err = seen.mark(3, "", key); err == nil {
				var ids []string
				var present bool
				if ids, present, err = d.strArray(key); err == nil && present {
					req.RoleIDs = &ids
				}
			}
		case "permissions":
			if err = seen.mark(4, "", key); err == nil {
				err = d.upsertPermissions(req)
			}
		default:
			return unknownField("", key)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case req.SubjectID == "":
		return missing("subject_id")
	case req.SubjectType == "":
		return missing("subject_type")
	}
	return nil
}

func (d *jsonDecoder) upsertPermissions(req *manage.UpsertRequest) error {
	present, err := d.openArray("permissions")
	if !present || err != nil {
		return err
	}
	perms := []manage.UpsertPermission{}
	for first := true; ; first = false {
		more, err := d.nextElem(first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		at := indexed("permissions", len(perms))
		present, err := d.openObject(at)
		if err != nil {
			return err
		}
		if !present {
			return invalid("field %q must be an object, not null", at)
		}
		prefix := at + "."
		var p manage.UpsertPermission
		var seen seenSet
		for first := true; ; first = false {
			key, ok, err := d.nextKey(first)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			switch key {
			case "feature_id":
				if err = seen.mark(0, prefix, key); err == nil {
					p.FeatureID, err = d.requiredStr(prefix + key)
				}
			case "action":
				if err = seen.mark(1, prefix, key); err == nil {
					p.Action, err = d.requiredStr(prefix + key)
				}
			case "effect":
				if err = seen.mark(2, prefix, key); err == nil {
					p.Effect, err = d.requiredStr(prefix + key)
					if err == nil && p.Effect != string(thauth.Allow) && p.Effect != string(thauth.Deny) {
						err = fieldErr(prefix+key, `must be "allow" or "deny"`)
					}
				}
			case "resource":
				if err = seen.mark(3, prefix, key); err == nil {
					p.Resource, _, err = d.optionalStr(prefix + key)
				}
			default:
				return unknownField(prefix, key)
			}
			if err != nil {
				return err
			}
		}
		switch {
		case p.FeatureID == "":
			return missing(prefix + "feature_id")
		case p.Action == "":
			return missing(prefix + "action")
		case p.Effect == "":
			return missing(prefix + "effect")
		}
		perms = append(perms, p)
	}
	req.Permissions = &perms
	return nil
}

// decodeKeyCreate decodes a POST /api/v1/projects/{project}/keys body:
// {"name", "scopes", "expires_at"?}.
func decodeKeyCreate(body string, req *manage.KeyRequest) error {
	d := jsonDecoder{s: body}
	if err := d.begin(); err != nil {
		return err
	}
	var seen seenSet
	scopesGiven := false
	for first := true; ; first = false {
		key, ok, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch key {
		case "name":
			if err = seen.mark(0, "", key); err == nil {
				req.Name, err = d.requiredStr(key)
			}
		case "scopes":
			if err = seen.mark(1, "", key); err == nil {
				req.Scopes, scopesGiven, err = d.strArray(key)
			}
		case "expires_at":
			if err = seen.mark(2, "", key); err == nil {
				var s string
				var present bool
				if s, present, err = d.optionalStr(key); err == nil && present {
					t, perr := time.Parse(time.RFC3339Nano, s)
					if perr != nil {
						return fieldErr(key, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z")
					}
					t = t.UTC().Truncate(time.Microsecond)
					req.ExpiresAt = &t
				}
			}
		default:
			return unknownField("", key)
		}
		if err != nil {
			return err
		}
	}
	if err := d.end(); err != nil {
		return err
	}
	switch {
	case req.Name == "":
		return missing("name")
	case !scopesGiven:
		return missing("scopes")
	}
	if msg := thauth.ValidateScopes(req.Scopes); msg != "" {
		return fieldErr("scopes", msg)
	}
	return nil
}
