package registry

// SetNoAuth switches authentication and authorization off (benchmark baseline only).
func SetNoAuth(s *Server, off bool) { s.noAuth = off }
