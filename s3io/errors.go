package s3io

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Sentinel errors. Errors returned by Client keep errors.Is working for
// them.
var (
	// ErrNotFound: the key does not exist (404 NoSuchKey / NotFound).
	ErrNotFound = errors.New("not found")
	// ErrPreconditionFailed: an If-Match / If-None-Match condition did
	// not hold (412).
	ErrPreconditionFailed = errors.New("precondition failed")
	// ErrNoSuchBucket: the bucket does not exist.
	ErrNoSuchBucket = errors.New("no such bucket")
	// ErrInvalidKey: the store cannot hold this key (too long, a path
	// segment over 255 bytes on a posix store, a key beside a "directory"
	// of the same name, not UTF-8, ...). Retrying will not help.
	ErrInvalidKey = errors.New("key cannot be stored")
	// ErrInvalidInput: the call was refused before anything was sent
	// (bad argument, body length not matching Size, ...).
	ErrInvalidInput = errors.New("invalid input")
)

// Class sorts errors by what the caller should do about them.
type Class int

// The classes returned by Classify. The zero Class is returned for a nil
// error only.
const (
	// Transient: try again later (5xx, throttling, timeouts, connection
	// refused or reset, cancelled contexts, truncated streams).
	Transient Class = iota + 1
	// Permanent: the same request will fail again (most 4xx, missing
	// bucket, a key the store cannot hold, bad input).
	Permanent
	// Precondition: a conditional request lost (412): re-read and decide.
	Precondition
	// NotFound: the key (not the bucket) does not exist.
	NotFound
)

// String names the class ("transient", "permanent", ...).
func (c Class) String() string {
	switch c {
	case 0:
		return "none"
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Precondition:
		return "precondition"
	case NotFound:
		return "notfound"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Error is the error type returned by Client methods for failed requests.
// Its message is short ("put demo/key: 412 PreconditionFailed: ...").
type Error struct {
	Op         string // get, head, put, delete, list, copy, ensure-bucket, ...
	Bucket     string
	Key        string
	StatusCode int    // HTTP status, 0 if no response arrived
	Code       string // S3 error code, "" if none
	Err        error  // the underlying error

	sentinel error
	detail   string // s3io's own diagnosis, appended to the message
}

// Error formats "<op> <bucket>/<key>: <status> <code>: <message>".
func (e *Error) Error() string {
	where := e.Bucket
	if e.Key != "" {
		where += "/" + shortKey(e.Key)
	}
	msg := e.Op + " " + where + ": "
	if e.StatusCode == 0 {
		return msg + e.Err.Error()
	}
	msg += strconv.Itoa(e.StatusCode)
	if e.Code != "" {
		msg += " " + e.Code
	}
	var ae smithy.APIError
	if errors.As(e.Err, &ae) && ae.ErrorMessage() != "" {
		msg += ": " + ae.ErrorMessage()
	}
	if e.detail != "" {
		msg += " (" + e.detail + ")"
	}
	return msg
}

// shortKey keeps error messages readable for keys up to 1024 bytes.
func shortKey(key string) string {
	const keep = 96
	if len(key) <= keep+32 {
		return key
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(key[cut]) {
		cut--
	}
	return key[:cut] + "…(" + strconv.Itoa(len(key)) + " bytes)"
}

// Unwrap exposes both the sentinel (if any) and the underlying error.
func (e *Error) Unwrap() []error {
	if e.sentinel != nil {
		return []error{e.sentinel, e.Err}
	}
	return []error{e.Err}
}

// wrap turns an SDK (or body) error into an *Error carrying context and
// the matching sentinel. A nil err stays nil.
func wrap(op, bucket, key string, err error) error {
	if err == nil {
		return nil
	}
	if already, ok := err.(*Error); ok {
		return already
	}
	e := &Error{Op: op, Bucket: bucket, Key: key, Err: err}
	e.StatusCode, e.Code = httpStatus(err)
	e.sentinel = sentinelFor(e.StatusCode, e.Code)
	return e
}

// invalid returns an ErrInvalidInput error for a call refused before
// sending.
func invalid(op, bucket, key, format string, args ...any) error {
	return &Error{Op: op, Bucket: bucket, Key: key,
		Err: fmt.Errorf(format, args...), sentinel: ErrInvalidInput}
}

// invalidKeyCodes are S3 error codes meaning "this key cannot be stored
// here". Measured on versitygw v1.8.0 (posix backend):
//   - 409 ExistingObjectIsDirectory: key x while x/child exists, and also a
//     path segment over 255 bytes that is not the first segment;
//   - 409 ObjectParentIsFile: key x/child while x exists;
//   - 400 KeyTooLongError: a first path segment over 255 bytes;
//   - 400 DirectoryObjectContainsData: key ending in '/' with a body.
var invalidKeyCodes = map[string]bool{
	"KeyTooLongError":             true,
	"ObjectParentIsFile":          true,
	"ExistingObjectIsDirectory":   true,
	"DirectoryObjectContainsData": true,
	"InvalidObjectName":           true,
	"InvalidKey":                  true,
}

func sentinelFor(status int, code string) error {
	switch {
	case code == "NoSuchBucket":
		return ErrNoSuchBucket
	case status == 412 || code == "PreconditionFailed":
		return ErrPreconditionFailed
	case code == "NoSuchKey" || code == "NotFound" || (status == 404 && code == ""):
		return ErrNotFound
	case invalidKeyCodes[code]:
		return ErrInvalidKey
	}
	return nil
}

// transientCodes are S3 error codes worth retrying whatever their status.
var transientCodes = map[string]bool{
	"RequestTimeout":       true, // 400: the connection was idle too long
	"RequestTimeTooSkewed": true, // 403: clock skew, not the object's fault
	"SlowDown":             true,
	"Throttling":           true,
	"ThrottlingException":  true,
	"InternalError":        true,
	"ServiceUnavailable":   true,
	"OperationAborted":     true, // 409: a conflicting operation is in progress
	"BadDigest":            true, // 400: the bytes that arrived were not the ones meant (Content-MD5)
}

// Classify says what kind of failure err is (see the Class constants). It
// understands errors returned by Client as well as raw aws-sdk-go-v2 errors.
// An error that is neither an HTTP answer nor a recognised local failure
// (context cancelled or timed out, connection refused or reset, truncated
// stream, ...) is Transient too: retrying an unknown failure is safer than
// dropping the work.
func Classify(err error) Class {
	if err == nil {
		return 0
	}
	status, code := httpStatus(err)
	sentinel := sentinelFor(status, code)
	is := func(target error) bool { return sentinel == target || errors.Is(err, target) }
	switch {
	case is(ErrPreconditionFailed):
		return Precondition
	case is(ErrNotFound):
		return NotFound
	case is(ErrNoSuchBucket), is(ErrInvalidKey), is(ErrInvalidInput):
		return Permanent
	}
	switch {
	case status == 0:
		return Transient
	case transientCodes[code], status == 408, status == 429:
		return Transient
	case status == 501: // NotImplemented: the server will never do it
		return Permanent
	case status >= 500:
		return Transient
	case status >= 400:
		return Permanent
	}
	return Transient
}

// httpStatus digs the HTTP status and S3 error code out of err; zeros if
// no response arrived.
func httpStatus(err error) (int, string) {
	var e *Error
	if errors.As(err, &e) && e.StatusCode != 0 {
		return e.StatusCode, e.Code
	}
	status, code := 0, ""
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return status, code
}
