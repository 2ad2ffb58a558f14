package manage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Limits that keep parsing bounded on any input. The HTTP layer has its own (smaller or
// equal) body limit; these hold for every caller.
const (
	// maxDocumentBytes bounds the input. A project of 100 000 subjects with 7 grants each
	// exports to about 48 MB (JSON or YAML); parsing costs roughly 15 times the input size
	// in memory. The HTTP layer may set a smaller body limit.
	maxDocumentBytes = 128 << 20
	// maxNodes bounds the generic tree (every key and every value counts once; a subject
	// with 7 grants is about 60), so memory stays proportional to a realistic document even
	// for inputs made of tiny elements.
	maxNodes = 20_000_000
	// maxDepth bounds nesting; a valid document is at most 6 levels deep.
	maxDepth = 32
)

// kind is the type of a value in the generic tree.
type kind uint8

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindList
	kindMap
	kindAlias // a YAML alias (*name): never allowed
	kindOther // a YAML value of a type documents never use (custom tag, !!binary, complex key)
)

// node is one value of a document parsed from JSON or YAML, before its schema is checked.
// Both formats produce the same tree, so one walk validates both and reports the same paths.
type node struct {
	kind kind
	// text is the scalar's text: the string, the number literal as written, true/false;
	// for kindOther a description of what it is.
	text string
	// kids holds the items of a list, or the keys and values of a mapping alternately
	// (key, value, key, value, ...) in document order.
	kids []node
}

// errTooManyNodes and errTooDeep end tree construction early; each becomes the only problem
// reported.
var (
	errTooManyNodes = fmt.Errorf("the document has too many elements (at most %d)", maxNodes)
	errTooDeep      = fmt.Errorf("the document is nested too deeply (at most %d levels)", maxDepth)
)

// parseJSONTree parses data as one JSON value. Duplicate keys are kept (the walk reports
// them); syntax errors are reported with their line and column.
func parseJSONTree(data []byte) (node, error) {
	if !json.Valid(data) {
		return node{}, jsonSyntaxError(data)
	}
	p := jsonParser{data: data}
	return p.value(0)
}

// jsonSyntaxError describes why data is not valid JSON.
func jsonSyntaxError(data []byte) error {
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := lineCol(data, int(se.Offset))
		return fmt.Errorf("malformed JSON at line %d, column %d: %s", line, col, se.Error())
	}
	if err != nil {
		return fmt.Errorf("malformed JSON: %s", err.Error())
	}
	return errors.New("malformed JSON")
}

func lineCol(data []byte, offset int) (line, col int) {
	offset = min(max(offset, 0), len(data))
	before := data[:offset]
	line = bytes.Count(before, []byte{'\n'}) + 1
	col = offset - (bytes.LastIndexByte(before, '\n') + 1)
	if col == 0 {
		col = 1
	}
	return line, col
}

// jsonParser builds the tree from input that json.Valid accepted, so it only has to
// recognise valid JSON; it still never indexes past the end of its input.
type jsonParser struct {
	data  []byte
	pos   int
	nodes int
}

func (p *jsonParser) skipSpace() {
	for p.pos < len(p.data) {
		switch p.data[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jsonParser) peek() byte {
	if p.pos < len(p.data) {
		return p.data[p.pos]
	}
	return 0
}

func (p *jsonParser) count() error {
	p.nodes++
	if p.nodes > maxNodes {
		return errTooManyNodes
	}
	return nil
}

func (p *jsonParser) value(depth int) (node, error) {
	if err := p.count(); err != nil {
		return node{}, err
	}
	p.skipSpace()
	switch c := p.peek(); c {
	case '{', '[':
		if depth >= maxDepth {
			return node{}, errTooDeep
		}
		p.pos++
		n := node{kind: kindList}
		end := byte(']')
		if c == '{' {
			n.kind, end = kindMap, '}'
		}
		p.skipSpace()
		if p.peek() == end {
			p.pos++
			return n, nil
		}
		for p.pos < len(p.data) {
			if n.kind == kindMap {
				p.skipSpace()
				if err := p.count(); err != nil {
					return node{}, err
				}
				key, err := p.string()
				if err != nil {
					return node{}, err
				}
				n.kids = append(n.kids, node{kind: kindString, text: key})
				p.skipSpace()
				p.pos++ // ':'
			}
			v, err := p.value(depth + 1)
			if err != nil {
				return node{}, err
			}
			n.kids = append(n.kids, v)
			p.skipSpace()
			if p.peek() == ',' {
				p.pos++
				continue
			}
			p.pos++ // the closing bracket
			break
		}
		return n, nil
	case '"':
		s, err := p.string()
		return node{kind: kindString, text: s}, err
	case 't':
		p.pos += len("true")
		return node{kind: kindBool, text: "true"}, nil
	case 'f':
		p.pos += len("false")
		return node{kind: kindBool, text: "false"}, nil
	case 'n':
		p.pos += len("null")
		return node{kind: kindNull}, nil
	default:
		start := p.pos
		for p.pos < len(p.data) && strings.IndexByte("+-0123456789.eE", p.data[p.pos]) >= 0 {
			p.pos++
		}
		return node{kind: kindNumber, text: string(p.data[start:p.pos])}, nil
	}
}

// string reads the string starting at p.pos (an opening quote).
func (p *jsonParser) string() (string, error) {
	start := p.pos
	escaped := false
	i := start + 1
	for ; i < len(p.data); i++ {
		c := p.data[i]
		if c == '\\' {
			escaped = true
			i++
			continue
		}
		if c == '"' {
			break
		}
	}
	if i >= len(p.data) {
		return "", errors.New("malformed JSON: unterminated string")
	}
	p.pos = i + 1
	if !escaped {
		// Invalid UTF-8 is kept as is here (encoding/json would replace it): the walk
		// reports it instead of silently changing a name.
		return string(p.data[start+1 : i]), nil
	}
	var s string
	if err := json.Unmarshal(p.data[start:i+1], &s); err != nil {
		return "", fmt.Errorf("malformed JSON string: %s", err.Error())
	}
	return s, nil
}

// parseYAMLTree parses data as a single YAML document. Aliases are kept as kindAlias nodes
// (never expanded, so alias bombs cost nothing; the walk rejects them) and values of types
// documents never use as kindOther.
func parseYAMLTree(data []byte) (n node, err error) {
	// yaml.v3 reports errors by panicking internally and recovering; a panic escaping it is
	// a bug in it, which must still not take the process down or pass as success.
	defer func() {
		if r := recover(); r != nil {
			n, err = node{}, errors.New("malformed YAML")
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return node{kind: kindNull}, nil
		}
		return node{}, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return node{}, yamlError(err)
		}
		return node{}, errors.New("malformed YAML: the input holds more than one document")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return node{kind: kindNull}, nil
	}
	c := yamlConverter{}
	return c.convert(doc.Content[0], 0)
}

func yamlError(err error) error {
	return fmt.Errorf("malformed YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
}

type yamlConverter struct{ nodes int }

func (c *yamlConverter) convert(y *yaml.Node, depth int) (node, error) {
	c.nodes++
	if c.nodes > maxNodes {
		return node{}, errTooManyNodes
	}
	switch y.Kind {
	case yaml.ScalarNode:
		switch tag := y.ShortTag(); tag {
		case "!!str", "!!timestamp":
			// A timestamp is text to us: RFC 3339 is checked where one is expected.
			return node{kind: kindString, text: y.Value}, nil
		case "!!int", "!!float":
			return node{kind: kindNumber, text: y.Value}, nil
		case "!!bool":
			return node{kind: kindBool, text: y.Value}, nil
		case "!!null":
			return node{kind: kindNull}, nil
		default:
			return node{kind: kindOther, text: "a value tagged " + tag}, nil
		}
	case yaml.AliasNode:
		return node{kind: kindAlias}, nil
	case yaml.SequenceNode, yaml.MappingNode:
		if depth >= maxDepth {
			return node{}, errTooDeep
		}
		n := node{kind: kindList, kids: make([]node, 0, len(y.Content))}
		if y.Kind == yaml.MappingNode {
			n.kind = kindMap
		}
		for i, k := range y.Content {
			if n.kind == kindMap && i%2 == 0 {
				// Keys: any scalar is taken by its text (the schema has only string keys,
				// so a key like 1 or true is simply unknown); anything else is refused.
				c.nodes++
				switch {
				case c.nodes > maxNodes:
					return node{}, errTooManyNodes
				case k.Kind == yaml.ScalarNode:
					n.kids = append(n.kids, node{kind: kindString, text: k.Value})
				case k.Kind == yaml.AliasNode:
					n.kids = append(n.kids, node{kind: kindAlias})
				default:
					n.kids = append(n.kids, node{kind: kindOther, text: "a complex key"})
				}
				continue
			}
			v, err := c.convert(k, depth+1)
			if err != nil {
				return node{}, err
			}
			n.kids = append(n.kids, v)
		}
		return n, nil
	default:
		return node{kind: kindOther, text: "an unsupported YAML value"}, nil
	}
}
