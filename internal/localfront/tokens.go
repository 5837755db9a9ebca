package localfront

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// LoadTokens reads a tokens file: one "token tenant" pair a line, blank
// lines and lines starting with # ignored.
func LoadTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	defer f.Close()
	tokens := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("tokens file %s line %d: want \"token tenant\"", path, n)
		}
		tokens[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("tokens file %s holds no token", path)
	}
	return tokens, nil
}

// tenant plays API Gateway's JWT authorizer: without a tokens file every
// caller is "local"; with one, the bearer token names the tenant. An
// unknown token gets no identity, which the function answers with 401.
func (f *Front) tenant(r *http.Request) (string, bool) {
	if f.tokens == nil {
		return LocalTenant, true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	tenant, ok := f.tokens[strings.TrimSpace(token)]
	return tenant, ok
}
