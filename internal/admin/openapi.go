package admin

import (
	"net/http"
	"strings"
)

// openapi serves an OpenAPI 3.1 document built from Routes, so the document
// and the routes cannot drift apart.
func (a *API) openapi(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.OpenAPI())
}

// OpenAPI returns the API description.
func (a *API) OpenAPI() map[string]any {
	paths := map[string]any{}
	for _, rt := range a.Routes() {
		method, path, _ := strings.Cut(rt.Pattern, " ")
		item, _ := paths[path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		op := map[string]any{
			"summary":             rt.Summary,
			"x-warden-permission": rt.Permission,
			"security":            []any{map[string]any{"bearer": []any{}}},
			"responses": map[string]any{
				"200": map[string]any{"description": "success"},
				"401": problemRef, "403": problemRef, "default": problemRef,
			},
		}
		var params []any
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				params = append(params, map[string]any{
					"name": strings.Trim(seg, "{}"), "in": "path", "required": true,
					"schema": map[string]any{"type": "string"},
				})
			}
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Permission == PermPublic {
			op["security"] = []any{} // the login route takes no credential
		}
		item[strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "warden admin API", "version": "1"},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
			"schemas": map[string]any{"Problem": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"type": map[string]any{"type": "string"}, "title": map[string]any{"type": "string"},
					"status": map[string]any{"type": "integer"}, "detail": map[string]any{"type": "string"},
					"instance": map[string]any{"type": "string"}, "requestId": map[string]any{"type": "string"},
					"errors": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				},
			}},
		},
	}
}

var problemRef = map[string]any{
	"description": "problem details (RFC 9457)",
	"content": map[string]any{"application/problem+json": map[string]any{
		"schema": map[string]any{"$ref": "#/components/schemas/Problem"},
	}},
}
