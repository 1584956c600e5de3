package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/vmware/govmomi/vim25/types"
)

// vCenter's SOAP deserializer reads every data object as its XSD sequence: child
// elements in the schema's order, each at most once unless it is an array, and
// none the type does not define. It rejects anything else with an InvalidRequest
// fault. The simulator's Go decoder takes any order, so the harness checks it here
// (--schema-order strict).
//
// The schema order comes from govmomi's vim25/types, generated from vCenter's WSDL:
// each struct embeds its base type first, then declares its own fields in sequence
// order, with the element name in the xml tag. An element's type is its field's
// Go type, or, where the XML names one with xsi:type (polymorphic fields such as
// BaseSelectionSpec, AnyType values), that type, which must be a subtype of the
// field's.

const xsiNamespace = "http://www.w3.org/2001/XMLSchema-instance"

// schemaError is a request that vCenter's deserializer would refuse.
type schemaError struct{ msg string }

func (e *schemaError) Error() string { return e.msg }

// elementField is one element of a data object's sequence.
type elementField struct {
	name  string
	typ   reflect.Type // element type, pointer and slice removed
	multi bool         // an array: the element may repeat
}

var sequenceCache sync.Map // reflect.Type -> []elementField

// sequence lists a struct's elements in schema order: its base type's first.
func sequence(t reflect.Type) []elementField {
	if v, ok := sequenceCache.Load(t); ok {
		return v.([]elementField)
	}
	var out []elementField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			bt := sf.Type
			for bt.Kind() == reflect.Ptr {
				bt = bt.Elem()
			}
			if bt.Kind() == reflect.Struct {
				out = append(out, sequence(bt)...)
			}
			continue
		}
		name := elementName(sf)
		if name == "" {
			continue
		}
		ft, multi := sf.Type, false
		for ft.Kind() == reflect.Ptr {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice {
			ft, multi = ft.Elem(), true
			for ft.Kind() == reflect.Ptr {
				ft = ft.Elem()
			}
		}
		out = append(out, elementField{name: name, typ: ft, multi: multi})
	}
	sequenceCache.Store(t, out)
	return out
}

// isLeaf: a type written as text (primitives, enums, dates, binary, references).
func isLeaf(t reflect.Type) bool {
	if t == morefType || t == timeType {
		return true
	}
	return t.Kind() != reflect.Struct && t.Kind() != reflect.Interface
}

// checkSchemaOrder checks a SOAP request body; nil if vCenter would read it, or if
// the method is not one the vim25 types know (the simulator answers those itself).
func checkSchemaOrder(body []byte) error {
	return checkSchemaOrderWith(body, types.TypeFunc())
}

// checkSchemaOrderWith checks a body whose types lookup resolves (another
// endpoint's, such as PBM's, see pbm.go).
func checkSchemaOrderWith(body []byte, lookup func(string) (reflect.Type, bool)) error {
	dec := xml.NewDecoder(bytes.NewReader(body))
	inBody := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // malformed XML: the simulator's decoder reports it
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !inBody {
			inBody = se.Name.Local == "Body"
			continue
		}
		method := se.Name.Local
		// The request type is registered under the method's name (for Foo_Task
		// methods, FooRequestType is its underlying type).
		t, ok := lookup(method)
		if !ok || t.Kind() != reflect.Struct {
			return nil
		}
		c := checker{dec: dec, method: method, lookup: lookup}
		return c.children(t, "parameters of method "+method, method)
	}
}

type checker struct {
	dec    *xml.Decoder
	method string
	lookup func(string) (reflect.Type, bool)
}

func (c *checker) fail(at, format string, args ...interface{}) error {
	return &schemaError{msg: fmt.Sprintf(format, args...) + fmt.Sprintf("\nat %s\nwhile parsing call information for method %s", at, c.method)}
}

// children reads the child elements of a data object of struct type t up to its
// end tag, checking each against t's sequence.
func (c *checker) children(t reflect.Type, what, at string) error {
	seq := sequence(t)
	last := -1
	for {
		tok, err := c.dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return nil
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			name := tok.Name.Local
			i := -1
			for j := range seq {
				if seq[j].name == name {
					i = j
					break
				}
			}
			here := at + "/" + name
			switch {
			case i < 0:
				return c.fail(here, "Unexpected element tag %q seen while parsing serialized %s: it defines no such element (its elements, in order: %s)",
					name, what, names(seq, 0))
			case i < last:
				return c.fail(here, "Unexpected element tag %q seen while parsing serialized %s: the schema orders it before %q (expected %s after %q)",
					name, what, seq[last].name, expected(seq, last), seq[last].name)
			case i == last && !seq[i].multi:
				return c.fail(here, "Unexpected element tag %q seen while parsing serialized %s: it is not an array and appears twice (expected %s after %q)",
					name, what, expected(seq, last), seq[last].name)
			}
			last = i
			if err := c.value(seq[i].typ, tok, here); err != nil {
				return err
			}
		}
	}
}

func names(seq []elementField, from int) string {
	var q []string
	for _, f := range seq[from:] {
		q = append(q, fmt.Sprintf("%q", f.name))
	}
	if len(q) == 0 {
		return "none"
	}
	return strings.Join(q, ", ")
}

// expected says what may follow element last: itself if an array, then the rest.
func expected(seq []elementField, last int) string {
	from := last + 1
	if seq[last].multi {
		from = last
	}
	if from >= len(seq) {
		return "the end of the object"
	}
	return "one of " + names(seq, from) + " or the end of the object"
}

// value checks one element whose declared type is ft.
func (c *checker) value(ft reflect.Type, start xml.StartElement, at string) error {
	xsiType := ""
	for _, a := range start.Attr {
		if a.Name.Local == "type" && (a.Name.Space == xsiNamespace || a.Name.Space == "xsi") {
			xsiType = a.Value
		}
	}
	t := ft
	if xsiType != "" {
		prefix, local := "", xsiType
		if i := strings.Index(xsiType, ":"); i >= 0 {
			prefix, local = xsiType[:i], xsiType[i+1:]
		}
		if prefix == "xsd" || prefix == "xs" {
			if ft.Kind() == reflect.Interface && ft.NumMethod() > 0 || ft.Kind() == reflect.Struct && !isLeaf(ft) {
				return c.fail(at, "Type %q is not a subtype of %s", xsiType, typeName(ft))
			}
			return c.skipLeaf(at)
		}
		concrete, ok := c.lookup(local)
		if !ok {
			return c.fail(at, "Unknown type %q named by xsi:type", xsiType)
		}
		if !subtypeOf(concrete, ft) {
			return c.fail(at, "Type %q is not a subtype of %s", local, typeName(ft))
		}
		t = concrete
	} else if ft.Kind() == reflect.Interface {
		if ft.NumMethod() == 0 {
			return c.skipAny() // an untyped xsd:anyType: nothing to check against
		}
		base, ok := c.lookup(strings.TrimPrefix(ft.Name(), "Base"))
		if !ok {
			return c.skipAny()
		}
		t = base
	}
	if isLeaf(t) {
		return c.skipLeaf(at)
	}
	return c.children(t, "DataObject of type "+t.Name(), at)
}

// subtypeOf: concrete is t itself, implements t's Base interface, or (for a
// struct) embeds t, as a derived vim type embeds its base.
func subtypeOf(concrete, t reflect.Type) bool {
	switch {
	case concrete == t:
		return true
	case t.Kind() == reflect.Interface:
		return reflect.PtrTo(concrete).Implements(t) || concrete.Implements(t)
	case t.Kind() == reflect.Struct && concrete.Kind() == reflect.Struct:
		for concrete.NumField() > 0 && concrete.Field(0).Anonymous {
			concrete = concrete.Field(0).Type
			if concrete == t {
				return true
			}
		}
	}
	return false
}

func typeName(t reflect.Type) string {
	if t.Kind() == reflect.Interface {
		if t.NumMethod() == 0 {
			return "anyType"
		}
		return strings.TrimPrefix(t.Name(), "Base")
	}
	return t.Name()
}

// skipLeaf reads a text-only element to its end; a child element is an error.
func (c *checker) skipLeaf(at string) error {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return c.fail(at+"/"+tok.Name.Local, "Unexpected element tag %q seen while parsing a simple value", tok.Name.Local)
		case xml.EndElement:
			return nil
		}
	}
}

// skipAny reads an element of unknown content to its end.
func (c *checker) skipAny() error {
	return c.dec.Skip()
}
