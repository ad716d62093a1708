package docs

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// configKeys returns every key path a value of type t accepts in YAML, in
// the form docs/configuration.md uses: "nats.embedded.links[].peer". A
// struct field is named by its yaml tag; an inline struct's fields belong
// to its parent; a slice of structs adds "[]"; a type that decodes itself
// (a Secret's env/file forms) or is not a struct (a duration, a list of
// strings) is one key.
func configKeys(t reflect.Type) []string {
	var keys []string
	walkKeys(t, "", &keys)
	sort.Strings(keys)
	return keys
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	unmarshalerV3  = reflect.TypeFor[yaml.Unmarshaler]()
	unmarshalerOld = reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]()
)

// decodesItself reports whether yaml decodes t through t's own method.
func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return t == durationType || p.Implements(unmarshalerV3) || p.Implements(unmarshalerOld)
}

func walkKeys(t reflect.Type, prefix string, keys *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || decodesItself(t) {
		*keys = append(*keys, prefix)
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			walkKeys(f.Type, prefix, keys)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Slice {
			el := ft.Elem()
			for el.Kind() == reflect.Pointer {
				el = el.Elem()
			}
			if el.Kind() == reflect.Struct && !decodesItself(el) {
				walkKeys(el, path+"[]", keys)
				continue
			}
		}
		walkKeys(f.Type, path, keys)
	}
}
