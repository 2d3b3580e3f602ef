package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/go-playground/locales/en"
	ut "github.com/go-playground/universal-translator"
	"github.com/go-playground/validator/v10"
	entranslations "github.com/go-playground/validator/v10/translations/en"
)

// MaxBodyBytes is the largest request body the public API accepts (1 MiB).
const MaxBodyBytes = 1 << 20

// FieldError is one entry of VALIDATION_FAILED's meta.details: the JSON path of the field, the
// rule it broke (a validator tag such as "required" or "email", or "type" for a JSON value of
// the wrong type) and a sentence for people.
type FieldError struct {
	Field   string `json:"field"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// Decoder decodes JSON request bodies into structs and validates them with
// github.com/go-playground/validator struct tags (`validate:"required,email"`). Field names in
// details are the JSON names. Unknown fields are ignored. It is safe for concurrent use; make
// one per server and register custom rules before serving.
type Decoder struct {
	validate *validator.Validate
	trans    ut.Translator
}

// NewDecoder returns a Decoder with validator's built-in rules and English messages.
func NewDecoder() *Decoder {
	v := validator.New(validator.WithRequiredStructEnabled())
	v.RegisterTagNameFunc(func(f reflect.StructField) string {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch name {
		case "-":
			return ""
		case "":
			return f.Name
		}
		return name
	})
	locale := en.New()
	trans, _ := ut.New(locale, locale).GetTranslator("en")
	if err := entranslations.RegisterDefaultTranslations(v, trans); err != nil {
		panic(fmt.Sprintf("httpapi: registering validator translations: %v", err)) // a broken library build, not input
	}
	return &Decoder{validate: v, trans: trans}
}

// RegisterRule adds a custom validation tag and the message its failures carry; message may
// use {0} for the field name, e.g. "{0} must not contain '@'".
func (d *Decoder) RegisterRule(tag string, fn validator.Func, message string) error {
	if err := d.validate.RegisterValidation(tag, fn); err != nil {
		return err
	}
	return d.validate.RegisterTranslation(tag, d.trans,
		func(t ut.Translator) error { return t.Add(tag, message, true) },
		func(t ut.Translator, fe validator.FieldError) string {
			msg, err := t.T(tag, fe.Field())
			if err != nil {
				return fe.Field() + " is invalid"
			}
			return msg
		})
}

// Validator returns the underlying validator, e.g. to register struct-level rules.
func (d *Decoder) Validator() *validator.Validate { return d.validate }

// Decode reads r's body (at most MaxBodyBytes) as one JSON object into dst, a pointer to a
// struct, and validates it. Its errors are *Error values ready to return from a HandlerFunc:
// 413 PAYLOAD_TOO_LARGE, 415 UNSUPPORTED_MEDIA_TYPE (the Content-Type must be application/json
// or a +json type), 400 INVALID_JSON (empty, malformed, not an object, or trailing data), and
// 400 VALIDATION_FAILED with []FieldError details (wrong JSON types, broken rules).
func (d *Decoder) Decode(r *http.Request, dst any) error {
	if r.ContentLength > MaxBodyBytes {
		return ErrPayloadTooLarge(MaxBodyBytes)
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		return ErrUnsupportedMediaType()
	}
	if r.Body == nil {
		return ErrInvalidJSON("Request body is empty; a JSON object is expected.")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge) || int64(len(data)) > MaxBodyBytes:
		return ErrPayloadTooLarge(MaxBodyBytes)
	case err != nil:
		return ErrInvalidJSON("Request body could not be read.").WithCause(err)
	}
	return d.DecodeBytes(data, dst)
}

// DecodeBytes is Decode for a body already read.
func (d *Decoder) DecodeBytes(data []byte, dst any) error {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		return ErrInvalidJSON("Request body is empty; a JSON object is expected.")
	case trimmed[0] != '{':
		return ErrInvalidJSON("Request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return validationFailed([]FieldError{{
				Field:   typeErr.Field,
				Rule:    "type",
				Message: fmt.Sprintf("%s must be %s", typeErr.Field, jsonKind(typeErr.Type)),
			}})
		}
		return ErrInvalidJSON("Request body is not valid JSON.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return ErrInvalidJSON("Request body must hold a single JSON object.")
	}
	return d.Validate(dst)
}

// Validate checks v's struct tags; its error is VALIDATION_FAILED with []FieldError details.
func (d *Decoder) Validate(v any) error {
	err := d.validate.Struct(v)
	if err == nil {
		return nil
	}
	var verrs validator.ValidationErrors
	if !errors.As(err, &verrs) {
		return ErrInternal(fmt.Errorf("httpapi: validating %T: %w", v, err))
	}
	details := make([]FieldError, 0, len(verrs))
	for _, fe := range verrs {
		field := fe.Namespace()
		if _, rest, ok := strings.Cut(field, "."); ok {
			field = rest // drop the Go name of the top-level struct
		}
		msg := fe.Translate(d.trans)
		if rest, ok := strings.CutPrefix(msg, fe.Field()); ok {
			msg = field + rest // name nested fields by their whole path
		}
		details = append(details, FieldError{Field: field, Rule: fe.Tag(), Message: msg})
	}
	return validationFailed(details)
}

func validationFailed(details []FieldError) *Error {
	return NewError(http.StatusBadRequest, CodeValidationFailed, "Validation failed.").WithDetails(details)
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// jsonKind names the JSON type a Go type decodes from, with its article.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a valid value"
}
