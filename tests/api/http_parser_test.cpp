// Unit tests of the incremental HTTP/1.x request parser (api/http_parser.h): every way the
// bytes of a request may arrive, and every request it must refuse.

#include <gtest/gtest.h>

#include <string>

#include "api/http_parser.h"

namespace relais::api {
namespace {

using Status = HttpRequestParser::Status;

// Feeds `data` in pieces of `step` bytes, keeping unconsumed bytes like the server does.
struct Feeder {
  HttpRequestParser parser;
  std::string buffer;
  size_t pos = 0;

  explicit Feeder(HttpParserLimits limits = {}) : parser(std::move(limits)) {}

  Status feed(const std::string& data) {
    buffer += data;
    size_t used = 0;
    Status st = parser.parse(buffer.data() + pos, buffer.size() - pos, used);
    pos += used;
    return st;
  }
  std::string rest() const { return buffer.substr(pos); }
};

TEST(HttpParser, SimpleGet) {
  Feeder f;
  EXPECT_EQ(f.feed("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), Status::Complete);
  EXPECT_EQ(f.parser.head().method, "GET");
  EXPECT_EQ(f.parser.head().target, "/healthz");
  EXPECT_EQ(f.parser.head().version_minor, 1);
  EXPECT_TRUE(f.parser.head().keep_alive);
  ASSERT_NE(f.parser.head().find("host"), nullptr);
  EXPECT_EQ(*f.parser.head().find("HOST"), "x");
  EXPECT_TRUE(f.parser.body().empty());
  EXPECT_EQ(f.rest(), "");
}

TEST(HttpParser, HeaderSplitAcrossReadsByteByByte) {
  const std::string req =
      "POST /api/v1/sources/app/messages HTTP/1.1\r\nContent-Type: application/json\r\n"
      "Content-Length: 11\r\n\r\n{\"a\":\"bcd\"}";
  Feeder f;
  for (size_t i = 0; i + 1 < req.size(); ++i) {
    ASSERT_EQ(f.feed(req.substr(i, 1)), Status::NeedMore) << "at byte " << i;
  }
  ASSERT_EQ(f.feed(req.substr(req.size() - 1)), Status::Complete);
  EXPECT_EQ(f.parser.head().content_length, 11);
  EXPECT_EQ(f.parser.body(), "{\"a\":\"bcd\"}");
  EXPECT_EQ(*f.parser.head().find("content-type"), "application/json");
}

TEST(HttpParser, BodySplitAcrossReads) {
  Feeder f;
  EXPECT_EQ(f.feed("PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123"), Status::NeedMore);
  EXPECT_TRUE(f.parser.head_done());
  EXPECT_TRUE(f.parser.in_progress());
  EXPECT_EQ(f.feed("45"), Status::NeedMore);
  EXPECT_EQ(f.feed("6789"), Status::Complete);
  EXPECT_EQ(f.parser.body(), "0123456789");
}

TEST(HttpParser, PipelinedSecondRequestArrivesWithTheFirst) {
  Feeder f;
  ASSERT_EQ(f.feed("POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\n\r\nGET /c"),
            Status::Complete);
  EXPECT_EQ(f.parser.head().target, "/a");
  EXPECT_EQ(f.parser.body(), "abc");
  EXPECT_EQ(f.rest(), "GET /b HTTP/1.1\r\n\r\nGET /c");
  f.parser.reset();
  ASSERT_EQ(f.feed(""), Status::Complete);
  EXPECT_EQ(f.parser.head().target, "/b");
  EXPECT_TRUE(f.parser.body().empty());
  f.parser.reset();
  EXPECT_EQ(f.feed(""), Status::NeedMore);
  EXPECT_TRUE(f.parser.in_progress());
  EXPECT_EQ(f.feed(" HTTP/1.1\r\n\r\n"), Status::Complete);
  EXPECT_EQ(f.parser.head().target, "/c");
}

TEST(HttpParser, OversizedHeaderIs431EvenBeforeItsEnd) {
  HttpParserLimits limits;
  limits.max_header_bytes = 1024;
  Feeder f(limits);
  EXPECT_EQ(f.feed("GET / HTTP/1.1\r\n"), Status::NeedMore);
  Status st = Status::NeedMore;
  for (int i = 0; i < 100 && st == Status::NeedMore; ++i)
    st = f.feed("X-Pad: " + std::string(50, 'p') + "\r\n");
  EXPECT_EQ(st, Status::Error);
  EXPECT_EQ(f.parser.status(), 431);
  // A complete head over the limit, in one piece.
  Feeder g(limits);
  EXPECT_EQ(g.feed("GET / HTTP/1.1\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n"),
            Status::Error);
  EXPECT_EQ(g.parser.status(), 431);
}

TEST(HttpParser, TooManyHeaderLinesAre431) {
  HttpParserLimits limits;
  limits.max_header_count = 5;
  auto head = [](int n) {
    std::string h = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < n; ++i) h += "X-H" + std::to_string(i) + ": v\r\n";
    return h + "\r\n";
  };
  Feeder ok(limits);
  EXPECT_EQ(ok.feed(head(5)), Status::Complete);
  EXPECT_EQ(ok.parser.head().headers.size(), 5u);
  Feeder over(limits);
  EXPECT_EQ(over.feed(head(6)), Status::Error);
  EXPECT_EQ(over.parser.status(), 431);
  EXPECT_NE(over.parser.detail().find("more than 5 header lines"), std::string::npos);
  // The default: 100 lines pass, 101 do not.
  Feeder def;
  EXPECT_EQ(def.feed(head(100)), Status::Complete);
  Feeder def_over;
  EXPECT_EQ(def_over.feed(head(101)), Status::Error);
  EXPECT_EQ(def_over.parser.status(), 431);
}

TEST(HttpParser, ExpectContinueIsDueOnceBeforeTheBody) {
  Feeder f;
  EXPECT_EQ(f.feed("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
            Status::NeedMore);
  EXPECT_TRUE(f.parser.head().expect_continue);
  EXPECT_TRUE(f.parser.continue_due());
  EXPECT_FALSE(f.parser.continue_due());  // once
  EXPECT_EQ(f.feed("hello"), Status::Complete);
  EXPECT_EQ(f.parser.body(), "hello");

  // The client did not wait: the body came with the head, no 100 is due.
  Feeder g;
  EXPECT_EQ(g.feed("POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"),
            Status::Complete);
  EXPECT_FALSE(g.parser.continue_due());

  // HTTP/1.0 has no 100-continue.
  Feeder h;
  h.feed("POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
  EXPECT_FALSE(h.parser.continue_due());

  // Any other expectation is refused.
  Feeder e;
  EXPECT_EQ(e.feed("POST /x HTTP/1.1\r\nExpect: magic\r\n\r\n"), Status::Error);
  EXPECT_EQ(e.parser.status(), 417);
}

TEST(HttpParser, ConnectionCloseAndHttp10) {
  Feeder f;
  ASSERT_EQ(f.feed("GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n"), Status::Complete);
  EXPECT_FALSE(f.parser.head().keep_alive);

  Feeder g;
  ASSERT_EQ(g.feed("GET / HTTP/1.0\r\n\r\n"), Status::Complete);
  EXPECT_EQ(g.parser.head().version_minor, 0);
  EXPECT_FALSE(g.parser.head().keep_alive);

  Feeder h;
  ASSERT_EQ(h.feed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), Status::Complete);
  EXPECT_TRUE(h.parser.head().keep_alive);
}

TEST(HttpParser, ChunkedBodyInPieces) {
  const std::string req =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
  for (size_t step : {1u, 3u, 7u, 1000u}) {
    Feeder f;
    Status st = Status::NeedMore;
    for (size_t i = 0; i < req.size() && st == Status::NeedMore; i += step) {
      st = f.feed(req.substr(i, step));
    }
    // Whatever was fed after the request stays unconsumed.
    f.buffer.append(req.substr(f.buffer.size()));
    ASSERT_EQ(st, Status::Complete) << "step " << step;
    EXPECT_TRUE(f.parser.head().chunked);
    EXPECT_EQ(f.parser.body(), "hello, world") << "step " << step;
    EXPECT_EQ(f.rest(), "GET /next HTTP/1.1\r\n\r\n") << "step " << step;
  }
}

TEST(HttpParser, ChunkedBodyOverTheLimitIs413) {
  HttpParserLimits limits;
  limits.body_limit = [](const HttpRequestHead&) { return int64_t{8}; };
  Feeder f(limits);
  EXPECT_EQ(f.feed("POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
            Status::NeedMore);
  EXPECT_EQ(f.feed("5\r\n"), Status::Error);
  EXPECT_EQ(f.parser.status(), 413);
}

TEST(HttpParser, DeclaredBodyOverTheLimitCompletesWithoutIt) {
  HttpParserLimits limits;
  limits.body_limit = [](const HttpRequestHead& h) {
    return h.target.find(":batch") != std::string::npos ? int64_t{100} : int64_t{10};
  };
  Feeder f(limits);
  EXPECT_EQ(f.feed("POST /x HTTP/1.1\r\nContent-Length: 50\r\nExpect: 100-continue\r\n\r\n"),
            Status::Complete);
  EXPECT_TRUE(f.parser.body_refused());
  EXPECT_FALSE(f.parser.continue_due());  // no 100: the answer is final
  Feeder g(limits);
  EXPECT_EQ(g.feed("POST /x:batch HTTP/1.1\r\nContent-Length: 50\r\n\r\n"), Status::NeedMore);
  EXPECT_FALSE(g.parser.body_refused());
}

TEST(HttpParser, PostWithoutLengthHasNoBody) {
  Feeder f;
  EXPECT_EQ(f.feed("POST /x HTTP/1.1\r\n\r\nGET"), Status::Complete);
  EXPECT_TRUE(f.parser.body().empty());
  EXPECT_EQ(f.rest(), "GET");
}

TEST(HttpParser, LeadingEmptyLinesAndBareLineFeeds) {
  Feeder f;
  EXPECT_EQ(f.feed("\r\n\r\n"), Status::NeedMore);
  EXPECT_FALSE(f.parser.in_progress());
  EXPECT_EQ(f.feed("GET /a HTTP/1.1\nHost: h\n\n"), Status::Complete);
  EXPECT_EQ(f.parser.head().target, "/a");
  EXPECT_EQ(*f.parser.head().find("host"), "h");
}

TEST(HttpParser, MalformedRequestsAreRefused) {
  struct Case {
    std::string text;
    int status;
  };
  const Case cases[] = {
      {"GET /\r\n\r\n", 400},
      {"GET  / HTTP/1.1\r\n\r\n", 400},
      {"G(T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / FTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nNo colon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nBad name: v\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400},
  };
  for (const auto& c : cases) {
    Feeder f;
    EXPECT_EQ(f.feed(c.text), Status::Error) << c.text;
    EXPECT_EQ(f.parser.status(), c.status) << c.text;
    EXPECT_FALSE(f.parser.detail().empty());
  }
}

TEST(HttpParser, ResetKeepsNothingOfThePreviousRequest) {
  Feeder f;
  ASSERT_EQ(f.feed("POST /a HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"),
            Status::Complete);
  f.parser.reset();
  ASSERT_EQ(f.feed("GET /b HTTP/1.1\r\n\r\n"), Status::Complete);
  EXPECT_EQ(f.parser.head().headers.size(), 0u);
  EXPECT_EQ(f.parser.head().content_length, -1);
  EXPECT_EQ(f.parser.head().version_minor, 1);
  EXPECT_TRUE(f.parser.body().empty());
}

}  // namespace
}  // namespace relais::api
