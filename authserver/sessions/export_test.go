package sessions

// FeedQueries counts the database queries the feed's pollers have made.
func FeedQueries(s *Service) int64 { return s.feeds.queries.Load() }
