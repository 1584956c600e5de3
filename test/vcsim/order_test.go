package main

// Run with: GO111MODULE=off GOPATH=/usr/share/gocode go test -run Order .
// Whatever govmomi's own encoder writes (it follows the WSDL's sequence order), the
// schema-order checker must accept; swapping two elements it must refuse.

import (
	"bytes"
	"io/ioutil"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/vim25/types"
	vxml "github.com/vmware/govmomi/vim25/xml"
)

// encodeRequest writes req as the body of a SOAP request for method, as govmomi does.
func encodeRequest(t *testing.T, method string, req interface{}) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body>`)
	enc := vxml.NewEncoder(&b)
	if err := enc.EncodeElement(req, vxml.StartElement{Name: vxml.Name{Space: "urn:vim25", Local: method}}); err != nil {
		t.Fatalf("%s: encoding: %v", method, err)
	}
	_ = enc.Flush()
	b.WriteString(`</soapenv:Body></soapenv:Envelope>`)
	return b.Bytes()
}

// fill sets every field of v (down to depth), two elements per array, so every
// element of the sequence is written.
func fill(v reflect.Value, depth int) {
	if depth <= 0 {
		return
	}
	switch v.Kind() {
	case reflect.Ptr:
		if v.Type().Elem().Kind() == reflect.Struct && v.Type().Elem() != timeType || isLeaf(v.Type().Elem()) {
			v.Set(reflect.New(v.Type().Elem()))
			fill(v.Elem(), depth-1)
		}
	case reflect.Struct:
		switch v.Type() {
		case timeType:
			v.Set(reflect.ValueOf(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)))
			return
		case morefType:
			v.Set(reflect.ValueOf(types.ManagedObjectReference{Type: "Folder", Value: "group-d1"}))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).PkgPath == "" {
				fill(v.Field(i), depth)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(s.Index(i), depth-1)
		}
		v.Set(s)
	case reflect.Interface:
		if v.Type().NumMethod() == 0 {
			v.Set(reflect.ValueOf("any"))
			return
		}
		if base, ok := types.TypeFunc()(strings.TrimPrefix(v.Type().Name(), "Base")); ok {
			p := reflect.New(base)
			if p.Type().Implements(v.Type()) {
				fill(p.Elem(), depth-1)
				v.Set(p)
			}
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1.5)
	}
}

// requestMethods lists every method vim25/types has a request type for: the
// registered types whose first element is _this.
func requestMethods(t *testing.T) []string {
	src, err := ioutil.ReadFile(filepath.Join("/usr/share/gocode/src/github.com/vmware/govmomi/vim25/types/types.go"))
	if err != nil {
		t.Skipf("govmomi source not found: %v", err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`t\["(\w+)"\]`).FindAllSubmatch(src, -1) {
		name := string(m[1])
		rt, ok := types.TypeFunc()(name)
		if !ok || strings.HasSuffix(name, "RequestType") || rt.Kind() != reflect.Struct || rt.NumField() == 0 {
			continue
		}
		if elementName(rt.Field(0)) == "_this" {
			out = append(out, name)
		}
	}
	return out
}

func TestOrderAcceptsGovmomiEncodingOfEveryMethod(t *testing.T) {
	methods := requestMethods(t)
	if len(methods) < 500 {
		t.Fatalf("found only %d methods", len(methods))
	}
	checked := 0
	for _, method := range methods {
		rt, _ := types.TypeFunc()(method)
		req := reflect.New(rt)
		fill(req.Elem(), 5)
		body := encodeRequest(t, method, req.Interface())
		if err := checkSchemaOrder(body); err != nil {
			t.Errorf("%s: %v\n%s", method, err, body)
			continue
		}
		// _this moved behind the other parameters: refused whenever there are any.
		start, end := bytes.Index(body, []byte("<_this")), bytes.Index(body, []byte("</_this>"))+len("</_this>")
		closing := bytes.LastIndex(body, []byte("</"+method+">"))
		if rt.NumField() < 2 || start < 0 || end >= closing {
			continue
		}
		this := append([]byte(nil), body[start:end]...)
		moved := append(append(append(append([]byte(nil), body[:start]...), body[end:closing]...), this...), body[closing:]...)
		if err := checkSchemaOrder(moved); err == nil || !strings.Contains(err.Error(), `"_this"`) {
			t.Errorf("%s: _this last accepted or badly reported: %v", method, err)
		}
		checked++
	}
	t.Logf("%d methods encoded by govmomi accepted, %d misordered ones refused", len(methods), checked)
}

func TestOrderChecksConcreteTypesOfPolymorphicElements(t *testing.T) {
	spec := types.VirtualMachineConfigSpec{
		Name: "vm",
		DeviceChange: []types.BaseVirtualDeviceConfigSpec{&types.VirtualDeviceConfigSpec{
			Operation: types.VirtualDeviceConfigSpecOperationAdd,
			Device: &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{
				VirtualDevice: types.VirtualDevice{Key: -1, Backing: &types.VirtualEthernetCardNetworkBackingInfo{
					VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: "VM Network"},
				}},
				AddressType: "generated",
			}}},
		}},
	}
	good := encodeRequest(t, "ReconfigVM_Task", &types.ReconfigVM_Task{This: types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-1"}, Spec: spec})
	if err := checkSchemaOrder(good); err != nil {
		t.Fatalf("govmomi's encoding refused: %v\n%s", err, good)
	}
	// addressType belongs to VirtualEthernetCard, after VirtualDevice's backing: move it first.
	bad := bytes.Replace(good, []byte("<key>-1</key>"), []byte("<addressType>generated</addressType><key>-1</key>"), 1)
	bad = bytes.Replace(bad, []byte("</backing><addressType>generated</addressType>"), []byte("</backing>"), 1)
	err := checkSchemaOrder(bad)
	if err == nil || !strings.Contains(err.Error(), `"key"`) || !strings.Contains(err.Error(), "VirtualVmxnet3") {
		t.Fatalf("misordered VirtualVmxnet3 accepted or badly reported: %v\n%s", err, bad)
	}
}
