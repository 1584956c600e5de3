// gen-vim-types writes provider/vsphere/soap/vim-types.ts: the element order and
// types of every vim25 data object and the arguments of every method, read from
// govmomi's generated vim25/types (whose structs list fields in WSDL sequence
// order), so the TypeScript serializer can write requests the way vCenter's
// deserializer reads them. Run it with `npm run gen:vim-types`; the freshness test
// (test/vsphere/vim-types.test.ts) checks the committed file matches its output.
//
// Only the standard library is used, so GO111MODULE=off builds it anywhere.
package main

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Compact codes for the XSD primitives (lower case, so they never clash with a
// vim type name, which starts upper case). xsd:string is the default and omitted.
var primitive = map[string]string{
	"string":    "",
	"bool":      "b",
	"int32":     "i",
	"int64":     "l",
	"int16":     "h",
	"int8":      "y",
	"byte":      "y",
	"float32":   "f",
	"float64":   "d",
	"time.Time": "t",
	"AnyType":   "a",
	"[]byte":    "x", // govmomi spells xsd:base64Binary as []byte
}

type field struct{ elem, code string; repeated bool }
type dataType struct {
	base   string
	fields []field
}

func main() {
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		gopath = "/usr/share/gocode"
	}
	root := flag.String("govmomi", filepath.Join(gopath, "src", "github.com", "vmware", "govmomi"), "govmomi source tree")
	out := flag.String("o", "-", "output file (- for stdout)")
	flag.Parse()

	typesDir := filepath.Join(*root, "vim25", "types")
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	var digest []string
	for _, name := range []string{"types.go", "enum.go", "if.go", "base.go"} {
		path := filepath.Join(typesDir, name)
		src, err := os.ReadFile(path)
		check(err)
		f, err := parser.ParseFile(fset, path, src, 0)
		check(err)
		files[name] = f
		digest = append(digest, fmt.Sprintf("%s %x", name, sha256.Sum256(src))[:len(name)+13])
	}
	version := "unknown"
	if src, err := os.ReadFile(filepath.Join(*root, "vim25", "client.go")); err == nil {
		if m := regexp.MustCompile(`Version\s*=\s*"([^"]+)"`).FindSubmatch(src); m != nil {
			version = string(m[1])
		}
	}

	// Named non-struct types: enums (string), method aliases (type M MRequestType).
	enums := map[string]bool{}
	structs := map[string]*ast.StructType{}
	methods := map[string]string{} // method element name -> request struct
	ifaces := map[string]string{}  // BaseXxx -> Xxx
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				name := ts.Name.Name
				switch t := ts.Type.(type) {
				case *ast.StructType:
					structs[name] = t
				case *ast.InterfaceType:
					if strings.HasPrefix(name, "Base") {
						ifaces[name] = strings.TrimPrefix(name, "Base")
					}
				case *ast.Ident:
					if t.Name == "string" {
						enums[name] = true
					} else if strings.HasSuffix(t.Name, "RequestType") {
						methods[name] = t.Name
					}
				}
			}
		}
	}

	requestTypes := map[string]bool{}
	responses := map[string]bool{}
	for m, req := range methods {
		requestTypes[req] = true
		responses[m+"Response"] = true
	}

	typeCode := func(owner string, expr ast.Expr) (string, bool) {
		repeated := false
		if a, ok := expr.(*ast.ArrayType); ok {
			if id, ok := a.Elt.(*ast.Ident); ok && id.Name == "byte" && owner != "ArrayOfByte" {
				return "x", false
			}
			repeated, expr = true, a.Elt
		}
		if s, ok := expr.(*ast.StarExpr); ok {
			expr = s.X
		}
		var name string
		switch t := expr.(type) {
		case *ast.Ident:
			name = t.Name
		case *ast.SelectorExpr:
			name = t.X.(*ast.Ident).Name + "." + t.Sel.Name
		case *ast.ArrayType: // [][]byte
			if id, ok := t.Elt.(*ast.Ident); ok && id.Name == "byte" {
				return "x", repeated
			}
			fail("%s: unexpected field type %T", owner, t.Elt)
		default:
			fail("%s: unexpected field type %T", owner, expr)
		}
		if c, ok := primitive[name]; ok {
			return c, repeated
		}
		if name == "ManagedObjectReference" {
			return "m", repeated
		}
		if enums[name] {
			return "", repeated
		}
		if b, ok := ifaces[name]; ok {
			name = b
		}
		if _, ok := structs[name]; !ok {
			fail("%s: field type %s is not a known vim type", owner, name)
		}
		return name, repeated
	}

	fieldsOf := func(owner string, st *ast.StructType) (string, []field) {
		base := ""
		var fields []field
		for _, f := range st.Fields.List {
			if len(f.Names) == 0 {
				id, ok := f.Type.(*ast.Ident)
				if !ok || base != "" {
					fail("%s: unexpected embedded field", owner)
				}
				base = id.Name
				continue
			}
			if f.Tag == nil {
				fail("%s.%s: no xml tag", owner, f.Names[0].Name)
			}
			tag, err := strconv.Unquote(f.Tag.Value)
			check(err)
			xmlTag := strings.Split(reflect.StructTag(tag).Get("xml"), ",")
			if xmlTag[0] == "" || xmlTag[0] == "-" || strings.Contains(tag, ",attr") || strings.Contains(tag, ",chardata") {
				fail("%s.%s: unexpected xml tag %q", owner, f.Names[0].Name, tag)
			}
			code, rep := typeCode(owner, f.Type)
			for range f.Names {
				fields = append(fields, field{xmlTag[0], code, rep})
			}
		}
		return base, fields
	}

	types := map[string]dataType{}
	for name, st := range structs {
		if requestTypes[name] || responses[name] || name == "ManagedObjectReference" {
			continue
		}
		base, fields := fieldsOf(name, st)
		types[name] = dataType{base, fields}
	}
	for name, t := range types {
		if t.base != "" {
			if _, ok := types[t.base]; !ok {
				fail("%s: base %s is not a data type", name, t.base)
			}
		}
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `// GENERATED by scripts/gen-vim-types (npm run gen:vim-types); do not edit.
// Source: govmomi vim25/types for vSphere API %s (Debian golang-github-vmware-govmomi-dev),
// sha256 prefixes: %s.
//
// VIM_TYPES: data object -> "[<Base] field field ...", fields in XSD sequence order.
// No <Base means the base is DynamicData; a lone "<" means none. A field is
// elem[:type][[]]: [] means it repeats; type is a vim data type name (an interface
// field is named by its base type) or a code: none = xsd:string (enums too),
// b boolean, i int, l long, h short, y byte, f float, d double, t dateTime,
// a anyType, x base64Binary, m ManagedObjectReference.
// VIM_METHODS: method -> its arguments after _this, in order, written like fields.
`, version, strings.Join(digest, ", "))
	// Requests must not claim a newer API than the table knows (SOAPAction
	// urn:vim25/<version>): vCenter would then send, and expect, fields it lacks.
	fmt.Fprintf(&b, "\n/** The vSphere API version these tables describe. */\nexport const VIM_VERSION = %q;\n\n", version)
	b.WriteString("export const VIM_TYPES: Readonly<Record<string, string>> = {\n")
	for _, name := range sortedKeys(types) {
		t := types[name]
		var toks []string
		switch t.base {
		case "DynamicData":
		case "":
			if name != "DynamicData" {
				toks = append(toks, "<")
			}
		default:
			toks = append(toks, "<"+t.base)
		}
		for _, f := range t.fields {
			toks = append(toks, fieldToken(f))
		}
		fmt.Fprintf(&b, "  %s: %q,\n", name, strings.Join(toks, " "))
	}
	b.WriteString("};\n\nexport const VIM_METHODS: Readonly<Record<string, string>> = {\n")
	for _, m := range sortedKeys(methods) {
		st, ok := structs[methods[m]]
		if !ok {
			fail("%s: no struct %s", m, methods[m])
		}
		base, fields := fieldsOf(methods[m], st)
		if base != "" || len(fields) == 0 || fields[0].elem != "_this" {
			fail("%s: request does not start with _this", m)
		}
		var toks []string
		for _, f := range fields[1:] {
			toks = append(toks, fieldToken(f))
		}
		fmt.Fprintf(&b, "  %s: %q,\n", m, strings.Join(toks, " "))
	}
	b.WriteString("};\n")

	if *out == "-" {
		_, err := os.Stdout.Write(b.Bytes())
		check(err)
		return
	}
	check(os.WriteFile(*out, b.Bytes(), 0o644))
	fmt.Fprintf(os.Stderr, "wrote %s: %d data types, %d methods, %d bytes\n", *out, len(types), len(methods), b.Len())
}

func fieldToken(f field) string {
	s := f.elem
	if f.code != "" {
		s += ":" + f.code
	}
	if f.repeated {
		s += "[]"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gen-vim-types: "+format+"\n", args...)
	os.Exit(1)
}
