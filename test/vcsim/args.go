package main

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// decodeRequest decodes a SOAP request body into its vim25 request struct (e.g.
// *types.AddPortGroup), as the simulator itself does; nil when it cannot.
func decodeRequest(body []byte) (req interface{}) {
	// The decoder panics on an xsi:type the field cannot hold; that request is the
	// schema check's (or the simulator's) to refuse, not a reason to drop the connection.
	defer func() {
		if recover() != nil {
			req = nil
		}
	}()
	m, err := simulator.UnmarshalBody(types.TypeFunc(), body)
	if err != nil {
		return nil
	}
	return m.Body
}

var (
	morefType = reflect.TypeOf(types.ManagedObjectReference{})
	timeType  = reflect.TypeOf(time.Time{})
)

// argValues resolves a dotted path of XML element names ("portgrp.spec.vlanId",
// "_this") in a decoded request and returns the text of every value found there:
// a path through an array fans out over its elements. A managed object reference
// gives its value ("host-21"), a primitive its XML text; a data object gives nothing.
func argValues(req interface{}, path string) []string {
	if req == nil || path == "" {
		return nil
	}
	var out []string
	collectArg(reflect.ValueOf(req), strings.Split(path, "."), &out)
	return out
}

func collectArg(v reflect.Value, segs []string, out *[]string) {
	for v.Kind() == reflect.Ptr || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8 {
		for i := 0; i < v.Len(); i++ {
			collectArg(v.Index(i), segs, out)
		}
		return
	}
	if len(segs) == 0 {
		if s, ok := leafText(v); ok {
			*out = append(*out, s)
		}
		return
	}
	if v.Kind() != reflect.Struct || v.Type() == morefType || v.Type() == timeType {
		return
	}
	if f, ok := fieldByElement(v, segs[0]); ok {
		collectArg(f, segs[1:], out)
	}
}

// fieldByElement finds the field serialized as element name, looking through
// embedded base types as the XML encoder does.
func fieldByElement(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if sf.Anonymous {
			fv := v.Field(i)
			for fv.Kind() == reflect.Ptr {
				if fv.IsNil() {
					break
				}
				fv = fv.Elem()
			}
			if fv.Kind() == reflect.Struct {
				if found, ok := fieldByElement(fv, name); ok {
					return found, true
				}
			}
			continue
		}
		if elementName(sf) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// elementName is the XML element name a struct field is written as ("" if none).
func elementName(sf reflect.StructField) string {
	tag := sf.Tag.Get("xml")
	if tag == "-" || sf.PkgPath != "" {
		return ""
	}
	parts := strings.Split(tag, ",")
	for _, opt := range parts[1:] {
		switch opt {
		case "attr", "chardata", "innerxml", "any", "comment":
			return "" // not a child element
		}
	}
	name := parts[0]
	if i := strings.LastIndex(name, " "); i >= 0 {
		name = name[i+1:] // "urn:vim25 name"
	}
	if name == "" && !strings.Contains(tag, ",") {
		name = sf.Name
	}
	return name
}

func leafText(v reflect.Value) (string, bool) {
	switch {
	case v.Type() == morefType:
		return v.Interface().(types.ManagedObjectReference).Value, true
	case v.Type() == timeType:
		return v.Interface().(time.Time).Format(time.RFC3339Nano), true
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), true
	case reflect.Bool:
		return strconv.FormatBool(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64), true
	}
	return "", false
}

// argsMatch reports whether every wanted argument has the wanted text somewhere
// at its path in the decoded request.
func argsMatch(req interface{}, want map[string]string) bool {
	for path, value := range want {
		found := false
		for _, got := range argValues(req, path) {
			if got == value {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func validateArgs(args map[string]string) error {
	for path := range args {
		if path == "" || strings.HasPrefix(path, ".") || strings.HasSuffix(path, ".") || strings.Contains(path, "..") {
			return fmt.Errorf("args: %q is not a dotted path of element names (e.g. \"portgrp.name\")", path)
		}
	}
	return nil
}

// readsNetworkVms reports whether a RetrieveProperties(Ex) request reads the vm
// property of networks: asks for it (by name, or with all=true) or traverses it
// (a TraversalSpec with path vm from a network type). The harness must bring it up
// to date first (see network.go).
func readsNetworkVms(req interface{}) bool {
	var specs []types.PropertyFilterSpec
	switch r := req.(type) {
	case *types.RetrieveProperties:
		specs = r.SpecSet
	case *types.RetrievePropertiesEx:
		specs = r.SpecSet
	default:
		return false
	}
	for _, spec := range specs {
		for _, ps := range spec.PropSet {
			if !isNetworkType(ps.Type) {
				continue
			}
			if ps.All != nil && *ps.All {
				return true
			}
			for _, p := range ps.PathSet {
				if p == "vm" {
					return true
				}
			}
		}
		for _, os := range spec.ObjectSet {
			if traversesNetworkVms(os.SelectSet, 0) {
				return true
			}
		}
	}
	return false
}

func isNetworkType(t string) bool {
	switch t {
	case "Network", "DistributedVirtualPortgroup", "OpaqueNetwork":
		return true
	}
	return false
}

func traversesNetworkVms(set []types.BaseSelectionSpec, depth int) bool {
	if depth > 32 {
		return false
	}
	for _, s := range set {
		ts, ok := s.(*types.TraversalSpec)
		if !ok {
			continue
		}
		if isNetworkType(ts.Type) && ts.Path == "vm" {
			return true
		}
		if traversesNetworkVms(ts.SelectSet, depth+1) {
			return true
		}
	}
	return false
}
