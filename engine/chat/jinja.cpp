// The Jinja subset of chat templates: a scanner that splits the source into text and tags (with
// trim_blocks, lstrip_blocks and `-` whitespace control), a recursive-descent parser into a small
// tree, and a tree-walking interpreter with Python value semantics.
#include "engine/chat/jinja.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <unordered_map>

namespace sextant::jinja {

// ---- Values ------------------------------------------------------------------------------------

const Value* Dict::Find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* Dict::Find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void Dict::Set(std::string key, Value value) {
  if (Value* v = Find(key)) {
    *v = std::move(value);
  } else {
    items.emplace_back(std::move(key), std::move(value));
  }
}

Value::Value(std::vector<Value> list)
    : kind_(Kind::kList), list_(std::make_shared<std::vector<Value>>(std::move(list))) {}
Value::Value(Dict dict) : kind_(Kind::kDict), dict_(std::make_shared<Dict>(std::move(dict))) {}

Value Value::None() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}

Value Value::Namespace(Dict attributes) {
  Value v(std::move(attributes));
  v.kind_ = Kind::kNamespace;
  return v;
}

Value Value::Macro(const void* definition) {
  Value v;
  v.kind_ = Kind::kMacro;
  v.macro_ = definition;
  return v;
}

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
    case Kind::kInt:
      return int_ != 0;
    case Kind::kFloat:
      return float_ != 0.0;
    case Kind::kString:
      return !string_.empty();
    case Kind::kList:
      return !list_->empty();
    case Kind::kDict:
      return !dict_->items.empty();
    case Kind::kNamespace:
    case Kind::kMacro:
      return true;
  }
  return false;
}

namespace {

// Python's repr of a float: the shortest form that reads back exactly, with ".0" when integral.
std::string FloatRepr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[40];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, f);
    if (std::strtod(buf, nullptr) == f) break;
  }
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string QuoteRepr(const std::string& s) {
  const char quote =
      s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c == quote) out += '\\';
        out += c;
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kString:
      return string_;
    default:
      return Repr();
  }
}

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return int_ ? "True" : "False";
    case Kind::kInt:
      return std::to_string(int_);
    case Kind::kFloat:
      return FloatRepr(float_);
    case Kind::kString:
      return QuoteRepr(string_);
    case Kind::kList: {
      std::string out = "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += ", ";
        out += (*list_)[i].Repr();
      }
      return out + "]";
    }
    case Kind::kDict:
    case Kind::kNamespace: {
      std::string out = kind_ == Kind::kNamespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i) out += ", ";
        out += QuoteRepr(dict_->items[i].first) + ": " + dict_->items[i].second.Repr();
      }
      return out + (kind_ == Kind::kNamespace ? "}>" : "}");
    }
    case Kind::kMacro:
      return "<macro>";
  }
  return "";
}

// ---- Source locations --------------------------------------------------------------------------

namespace {

std::string Where(std::string_view src, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < src.size(); ++i) {
    if (src[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "offset " + std::to_string(offset) + " (line " + std::to_string(line) + ", column " +
         std::to_string(col) + ")";
}

// ---- Tokens inside tags ------------------------------------------------------------------------

enum class Tok : uint8_t { kName, kString, kInt, kFloat, kOp, kEnd };

struct Token {
  Tok type = Tok::kEnd;
  std::string text;  // name, operator, or the decoded string literal
  size_t offset = 0;
  int64_t int_value = 0;
  double float_value = 0;
};

bool IsNameStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsNameChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// A piece of the template: literal text, or the tokens of a `{{ }}` or `{% %}` tag.
struct Piece {
  enum Kind { kText, kOutput, kStatement } kind = kText;
  std::string text;
  size_t offset = 0;
  std::vector<Token> tokens;  // ends with a kEnd token at the closing delimiter
};

class Scanner {
 public:
  explicit Scanner(std::string_view src) : src_(src) {}

  Status Scan(std::vector<Piece>& out) {
    size_t pos = 0;
    bool strip_next = false;  // the previous tag ended with '-'
    bool trim_newline = false;
    while (true) {
      size_t k = pos;
      while (true) {
        k = src_.find('{', k);
        if (k == std::string_view::npos || k + 1 >= src_.size()) {
          k = std::string_view::npos;
          break;
        }
        const char n = src_[k + 1];
        if (n == '{' || n == '%' || n == '#') break;
        ++k;
      }
      const size_t text_end = k == std::string_view::npos ? src_.size() : k;
      std::string_view text = src_.substr(pos, text_end - pos);
      size_t text_offset = pos;
      if (strip_next) {
        size_t s = 0;
        while (s < text.size() && IsSpace(text[s])) ++s;
        text.remove_prefix(s);
        text_offset += s;
      } else if (trim_newline) {
        if (!text.empty() && text[0] == '\n') {
          text.remove_prefix(1);
          ++text_offset;
        } else if (text.size() >= 2 && text[0] == '\r' && text[1] == '\n') {
          text.remove_prefix(2);
          text_offset += 2;
        }
      }
      if (k == std::string_view::npos) {
        if (!text.empty()) out.push_back({Piece::kText, std::string(text), text_offset, {}});
        return Status::Ok();
      }
      const char kind = src_[k + 1];
      size_t inner = k + 2;
      bool plus = false;
      if (inner < src_.size() && src_[inner] == '-') {
        while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
        ++inner;
      } else {
        if (inner < src_.size() && src_[inner] == '+' && kind != '{') {
          plus = true;
          ++inner;
        }
        if (kind != '{' && !plus) {
          // lstrip_blocks: spaces and tabs between the start of a line and a block tag go.
          size_t e = text.size();
          while (e > 0 && (text[e - 1] == ' ' || text[e - 1] == '\t')) --e;
          const bool line_start = e > 0 ? text[e - 1] == '\n' : LineStartsAt(text_offset);
          if (line_start) text = text.substr(0, e);
        }
      }
      if (!text.empty()) out.push_back({Piece::kText, std::string(text), text_offset, {}});
      if (kind == '#') {
        const size_t end = src_.find("#}", inner);
        if (end == std::string_view::npos) {
          return Status::InvalidArgument("unterminated comment at " + Where(src_, k));
        }
        strip_next = end > inner && src_[end - 1] == '-';
        trim_newline = true;
        pos = end + 2;
        continue;
      }
      Piece piece;
      piece.kind = kind == '{' ? Piece::kOutput : Piece::kStatement;
      piece.offset = k;
      size_t after = 0;
      SEXTANT_RETURN_IF_ERROR(
          Tokenize(inner, kind == '{' ? '}' : '%', piece.tokens, strip_next, after, k));
      trim_newline = kind == '%';
      out.push_back(std::move(piece));
      pos = after;
    }
  }

 private:
  // Whether `offset` is at the start of a line (of the source).
  bool LineStartsAt(size_t offset) const { return offset == 0 || src_[offset - 1] == '\n'; }

  // Tokens from `pos` up to the closing "}}" or "%}" (with an optional '-' before it).
  Status Tokenize(size_t pos, char close, std::vector<Token>& out, bool& strip_after, size_t& after,
                  size_t tag_offset) {
    int depth = 0;  // brackets open inside the tag
    while (true) {
      while (pos < src_.size() && IsSpace(src_[pos])) ++pos;
      if (pos >= src_.size()) {
        return Status::InvalidArgument(std::string("unterminated ") +
                                       (close == '}' ? "'{{'" : "'{%'") + " tag at " +
                                       Where(src_, tag_offset));
      }
      const char c = src_[pos];
      const auto closes_at = [&](size_t p) {
        return depth == 0 && p + 1 < src_.size() && src_[p] == close && src_[p + 1] == '}';
      };
      if (c == '-' && closes_at(pos + 1)) {
        out.push_back({Tok::kEnd, "", pos, 0, 0});
        strip_after = true;
        after = pos + 3;
        return Status::Ok();
      }
      if (closes_at(pos)) {
        out.push_back({Tok::kEnd, "", pos, 0, 0});
        strip_after = false;
        after = pos + 2;
        return Status::Ok();
      }
      Token t;
      t.offset = pos;
      if (IsNameStart(c)) {
        size_t e = pos;
        while (e < src_.size() && IsNameChar(src_[e])) ++e;
        t.type = Tok::kName;
        t.text = std::string(src_.substr(pos, e - pos));
        pos = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = pos;
        while (e < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_'))
          ++e;
        bool is_float = false;
        if (e + 1 < src_.size() && src_[e] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t x = e + 1;
          if (x < src_.size() && (src_[x] == '+' || src_[x] == '-')) ++x;
          if (x < src_.size() && std::isdigit(static_cast<unsigned char>(src_[x]))) {
            is_float = true;
            e = x;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string digits;
        for (char d : src_.substr(pos, e - pos)) {
          if (d != '_') digits += d;
        }
        if (is_float) {
          t.type = Tok::kFloat;
          t.float_value = std::strtod(digits.c_str(), nullptr);
        } else {
          t.type = Tok::kInt;
          errno = 0;
          t.int_value = std::strtoll(digits.c_str(), nullptr, 10);
          if (errno == ERANGE) {
            return Status::InvalidArgument("integer literal out of range at " + Where(src_, pos));
          }
        }
        t.text = digits;
        pos = e;
      } else if (c == '\'' || c == '"') {
        t.type = Tok::kString;
        size_t e = pos + 1;
        while (true) {
          if (e >= src_.size()) {
            return Status::InvalidArgument("unterminated string literal at " + Where(src_, pos));
          }
          const char ch = src_[e];
          if (ch == c) break;
          if (ch == '\\' && e + 1 < src_.size()) {
            const char x = src_[e + 1];
            e += 2;
            switch (x) {
              case 'n':
                t.text += '\n';
                break;
              case 't':
                t.text += '\t';
                break;
              case 'r':
                t.text += '\r';
                break;
              case 'b':
                t.text += '\b';
                break;
              case 'f':
                t.text += '\f';
                break;
              case '\\':
              case '\'':
              case '"':
                t.text += x;
                break;
              case '\n':
                break;  // a line continuation
              default:
                t.text += '\\';
                t.text += x;
            }
            continue;
          }
          t.text += ch;
          ++e;
        }
        pos = e + 1;
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[",
                                           "]",  "{",  "}",  ".",  ",",  ":",  "|", "~", "+",
                                           "-",  "*",  "/",  "%",  "<",  ">",  "="};
        t.type = Tok::kOp;
        for (const char* op : kOps) {
          const size_t n = std::strlen(op);
          if (src_.compare(pos, n, op) == 0) {
            t.text = op;
            break;
          }
        }
        if (t.text.empty()) {
          return Status::InvalidArgument(std::string("unexpected character '") + c + "' at " +
                                         Where(src_, pos));
        }
        if (t.text == "(" || t.text == "[" || t.text == "{") ++depth;
        if ((t.text == ")" || t.text == "]" || t.text == "}") && depth > 0) --depth;
        pos += t.text.size();
      }
      out.push_back(std::move(t));
    }
  }

  std::string_view src_;
};

// ---- Syntax tree -------------------------------------------------------------------------------

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum Kind {
    kLiteral,
    kName,
    kList,
    kTuple,
    kDict,    // args: key, value, key, value ...
    kAttr,    // args[0].name
    kIndex,   // args[0][args[1]]
    kSlice,   // args[0][args[1]:args[2]:args[3]] (null parts absent)
    kCall,    // args[0](args[1..], kwargs)
    kFilter,  // args[0] | name(args[1..], kwargs)
    kTest,    // args[0] is [not] name(args[1..])
    kNot,     // not args[0]
    kNeg,     // -args[0]
    kPos,     // +args[0]
    kBinary,  // args[0] name args[1]
    kAnd,     // args[0] and args[1]
    kOr,      // args[0] or args[1]
    kCond,    // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind = kLiteral;
  size_t offset = 0;
  Value literal;
  std::string name;
  bool negated = false;  // is not, not in
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

struct Node {
  enum Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kBlock };
  Kind kind = kText;
  size_t offset = 0;
  std::string text;                  // kText; kSet/kSetBlock: attribute of targets[0] ("" none)
  std::vector<std::string> targets;  // kFor: loop variables; kSet: names; kMacro: name
  std::vector<ExprPtr> exprs;        // kOutput: [0]; kIf: conditions; kFor: [iter, filter?];
                                     // kSet: [value]; kMacro: parameter defaults (null: none)
  std::vector<std::string> params;   // kMacro: parameter names
  std::vector<NodeList> bodies;      // kIf: one per condition (+ else); kFor: body, else;
                                     // kSetBlock, kMacro, kBlock: body
};

}  // namespace

struct Template::Program {
  std::string source;
  NodeList nodes;
};

namespace {

// ---- Parser ------------------------------------------------------------------------------------

constexpr int kMaxParseDepth = 200;

class Parser {
 public:
  Parser(std::string_view src, std::vector<Piece>& pieces) : src_(src), pieces_(pieces) {}

  Status ParseAll(NodeList& out) {
    std::string end;
    SEXTANT_RETURN_IF_ERROR(ParseBody(out, {}, end));
    return Status::Ok();
  }

 private:
  Status Error(size_t offset, const std::string& what) const {
    return Status::InvalidArgument(what + " at " + Where(src_, offset));
  }

  // Parses nodes until a statement whose keyword is in `ends` (returned in `end`, with the
  // statement's tokens left in cur_ for the caller) or the end of the template.
  Status ParseBody(NodeList& out, const std::vector<std::string>& ends, std::string& end) {
    if (++body_depth_ > kMaxParseDepth) {
      return Status::ResourceExhausted("blocks nested deeper than " +
                                       std::to_string(kMaxParseDepth) + " at " +
                                       Where(src_, Offset()));
    }
    while (index_ < pieces_.size()) {
      Piece& p = pieces_[index_];
      if (p.kind == Piece::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::kText;
        n->offset = p.offset;
        n->text = std::move(p.text);
        out.push_back(std::move(n));
        ++index_;
        continue;
      }
      toks_ = &p.tokens;
      pos_ = 0;
      if (p.kind == Piece::kOutput) {
        ++index_;
        auto n = std::make_unique<Node>();
        n->kind = Node::kOutput;
        n->offset = p.offset;
        ExprPtr e;
        SEXTANT_RETURN_IF_ERROR(ParseExpr(e, true));
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());
        n->exprs.push_back(std::move(e));
        out.push_back(std::move(n));
        continue;
      }
      const Token& kw = Peek();
      if (kw.type != Tok::kName) return Error(kw.offset, "expected a statement keyword");
      if (std::find(ends.begin(), ends.end(), kw.text) != ends.end()) {
        end = kw.text;
        ++index_;
        pos_ = 1;
        --body_depth_;
        return Status::Ok();
      }
      ++index_;
      Next();
      std::unique_ptr<Node> n;
      SEXTANT_RETURN_IF_ERROR(ParseStatement(kw, n));
      if (n) out.push_back(std::move(n));
    }
    --body_depth_;
    if (!ends.empty()) {
      return Status::InvalidArgument("missing '{% " + ends.back() +
                                     " %}' for the block opened at " + Where(src_, open_offset_));
    }
    return Status::Ok();
  }

  Status ParseStatement(const Token& kw, std::unique_ptr<Node>& out) {
    const std::string word = kw.text;
    const size_t offset = pieces_[index_ - 1].offset;
    auto n = std::make_unique<Node>();
    n->offset = offset;
    if (word == "if") {
      n->kind = Node::kIf;
      ExprPtr cond;
      SEXTANT_RETURN_IF_ERROR(ParseExpr(cond, true));
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
      n->exprs.push_back(std::move(cond));
      while (true) {
        NodeList body;
        std::string end;
        const size_t saved = open_offset_;
        open_offset_ = offset;
        SEXTANT_RETURN_IF_ERROR(ParseBody(body, {"elif", "else", "endif"}, end));
        open_offset_ = saved;
        n->bodies.push_back(std::move(body));
        if (end == "endif") {
          SEXTANT_RETURN_IF_ERROR(ExpectEnd());
          break;
        }
        if (end == "elif") {
          ExprPtr c;
          SEXTANT_RETURN_IF_ERROR(ParseExpr(c, true));
          SEXTANT_RETURN_IF_ERROR(ExpectEnd());
          n->exprs.push_back(std::move(c));
          continue;
        }
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());  // else
        NodeList else_body;
        open_offset_ = offset;
        SEXTANT_RETURN_IF_ERROR(ParseBody(else_body, {"endif"}, end));
        open_offset_ = saved;
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());
        n->bodies.push_back(std::move(else_body));
        break;
      }
    } else if (word == "for") {
      n->kind = Node::kFor;
      while (true) {
        const Token& t = Next();
        if (t.type != Tok::kName) return Error(t.offset, "expected a loop variable name");
        n->targets.push_back(t.text);
        if (!IsOp(",")) break;
        Next();
      }
      if (!IsName("in")) return Error(Peek().offset, "expected 'in'");
      Next();
      ExprPtr iter;
      SEXTANT_RETURN_IF_ERROR(ParseExpr(iter, false));
      n->exprs.push_back(std::move(iter));
      if (IsName("if")) {
        Next();
        ExprPtr filter;
        SEXTANT_RETURN_IF_ERROR(ParseExpr(filter, false));
        n->exprs.push_back(std::move(filter));
      }
      if (IsName("recursive")) return Error(Peek().offset, "recursive loops are not supported");
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
      NodeList body;
      std::string end;
      const size_t saved = open_offset_;
      open_offset_ = offset;
      ++loop_depth_;
      SEXTANT_RETURN_IF_ERROR(ParseBody(body, {"else", "endfor"}, end));
      --loop_depth_;
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
      n->bodies.push_back(std::move(body));
      if (end == "else") {
        NodeList else_body;
        SEXTANT_RETURN_IF_ERROR(ParseBody(else_body, {"endfor"}, end));
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());
        n->bodies.push_back(std::move(else_body));
      }
      open_offset_ = saved;
    } else if (word == "set") {
      const Token& t = Next();
      if (t.type != Tok::kName) return Error(t.offset, "expected a variable name after 'set'");
      n->targets.push_back(t.text);
      if (IsOp(".")) {
        Next();
        const Token& a = Next();
        if (a.type != Tok::kName) return Error(a.offset, "expected an attribute name");
        n->text = a.text;
      } else {
        while (IsOp(",")) {
          Next();
          const Token& more = Next();
          if (more.type != Tok::kName) return Error(more.offset, "expected a variable name");
          n->targets.push_back(more.text);
        }
      }
      if (IsOp("=")) {
        Next();
        n->kind = Node::kSet;
        ExprPtr value;
        SEXTANT_RETURN_IF_ERROR(ParseTuple(value));
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());
        n->exprs.push_back(std::move(value));
      } else {
        if (n->targets.size() != 1 || !n->text.empty()) {
          return Error(Peek().offset, "expected '='");
        }
        SEXTANT_RETURN_IF_ERROR(ExpectEnd());
        n->kind = Node::kSetBlock;
        SEXTANT_RETURN_IF_ERROR(ParseBlockBody(*n, "endset", offset));
      }
    } else if (word == "macro") {
      n->kind = Node::kMacro;
      const Token& name = Next();
      if (name.type != Tok::kName) return Error(name.offset, "expected a macro name");
      n->targets.push_back(name.text);
      if (!IsOp("(")) return Error(Peek().offset, "expected '(' after the macro name");
      Next();
      while (!IsOp(")")) {
        const Token& p = Next();
        if (p.type != Tok::kName) return Error(p.offset, "expected a parameter name");
        n->params.push_back(p.text);
        ExprPtr def;
        if (IsOp("=")) {
          Next();
          SEXTANT_RETURN_IF_ERROR(ParseExpr(def, true));
        }
        n->exprs.push_back(std::move(def));
        if (IsOp(",")) {
          Next();
        } else if (!IsOp(")")) {
          return Error(Peek().offset, "expected ',' or ')'");
        }
      }
      Next();
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
      SEXTANT_RETURN_IF_ERROR(ParseBlockBody(*n, "endmacro", offset));
    } else if (word == "break" || word == "continue") {
      if (loop_depth_ == 0) return Error(kw.offset, "'" + word + "' outside a loop");
      n->kind = word == "break" ? Node::kBreak : Node::kContinue;
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
    } else if (word == "generation") {
      n->kind = Node::kBlock;
      SEXTANT_RETURN_IF_ERROR(ExpectEnd());
      SEXTANT_RETURN_IF_ERROR(ParseBlockBody(*n, "endgeneration", offset));
    } else {
      return Error(kw.offset, "unsupported statement '" + word + "'");
    }
    out = std::move(n);
    return Status::Ok();
  }

  Status ParseBlockBody(Node& n, const std::string& end_word, size_t offset) {
    NodeList body;
    std::string end;
    const size_t saved = open_offset_;
    open_offset_ = offset;
    const int saved_loops = loop_depth_;
    if (n.kind == Node::kMacro) loop_depth_ = 0;
    SEXTANT_RETURN_IF_ERROR(ParseBody(body, {end_word}, end));
    loop_depth_ = saved_loops;
    open_offset_ = saved;
    SEXTANT_RETURN_IF_ERROR(ExpectEnd());
    n.bodies.push_back(std::move(body));
    return Status::Ok();
  }

  // ---- expressions

  const Token& Peek(size_t ahead = 0) const {
    const size_t i = std::min(pos_ + ahead, toks_->size() - 1);
    return (*toks_)[i];
  }
  const Token& Next() {
    const Token& t = Peek();
    if (pos_ < toks_->size() - 1) ++pos_;
    return t;
  }
  size_t Offset() const { return toks_ != nullptr ? Peek().offset : 0; }
  bool IsOp(std::string_view op) const { return Peek().type == Tok::kOp && Peek().text == op; }
  bool IsName(std::string_view name) const {
    return Peek().type == Tok::kName && Peek().text == name;
  }
  Status ExpectEnd() {
    if (Peek().type != Tok::kEnd) {
      return Error(Peek().offset, "unexpected '" + Peek().text + "'");
    }
    return Status::Ok();
  }
  Status ExpectOp(std::string_view op) {
    if (!IsOp(op)) {
      return Error(Peek().offset, "expected '" + std::string(op) + "', found '" +
                                      (Peek().type == Tok::kEnd ? "end of tag" : Peek().text) +
                                      "'");
    }
    Next();
    return Status::Ok();
  }

  ExprPtr Make(Expr::Kind kind, size_t offset) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->offset = offset;
    return e;
  }

  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  Status CheckDepth() const {
    if (expr_depth_ > kMaxParseDepth) {
      return Status::ResourceExhausted("expression nested deeper than " +
                                       std::to_string(kMaxParseDepth) + " at " +
                                       Where(src_, Peek().offset));
    }
    return Status::Ok();
  }

  // `a, b` without brackets (set x = a, b): a tuple; a single expression otherwise.
  Status ParseTuple(ExprPtr& out) {
    SEXTANT_RETURN_IF_ERROR(ParseExpr(out, true));
    if (!IsOp(",")) return Status::Ok();
    ExprPtr t = Make(Expr::kTuple, out->offset);
    t->args.push_back(std::move(out));
    while (IsOp(",")) {
      Next();
      if (Peek().type == Tok::kEnd) break;
      ExprPtr e;
      SEXTANT_RETURN_IF_ERROR(ParseExpr(e, true));
      t->args.push_back(std::move(e));
    }
    out = std::move(t);
    return Status::Ok();
  }

  // with_cond: whether `x if c else y` is allowed at this level (not in a for's iterable).
  Status ParseExpr(ExprPtr& out, bool with_cond) {
    DepthGuard g(expr_depth_);
    SEXTANT_RETURN_IF_ERROR(CheckDepth());
    SEXTANT_RETURN_IF_ERROR(ParseOr(out));
    while (with_cond && IsName("if")) {
      const size_t off = Next().offset;
      ExprPtr cond;
      SEXTANT_RETURN_IF_ERROR(ParseOr(cond));
      ExprPtr other;
      if (IsName("else")) {
        Next();
        SEXTANT_RETURN_IF_ERROR(ParseExpr(other, true));
      }
      ExprPtr c = Make(Expr::kCond, off);
      c->args.push_back(std::move(out));
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(other));
      out = std::move(c);
    }
    return Status::Ok();
  }

  Status ParseOr(ExprPtr& out) {
    SEXTANT_RETURN_IF_ERROR(ParseAnd(out));
    while (IsName("or")) {
      const size_t off = Next().offset;
      ExprPtr rhs;
      SEXTANT_RETURN_IF_ERROR(ParseAnd(rhs));
      ExprPtr e = Make(Expr::kOr, off);
      e->args.push_back(std::move(out));
      e->args.push_back(std::move(rhs));
      out = std::move(e);
    }
    return Status::Ok();
  }

  Status ParseAnd(ExprPtr& out) {
    SEXTANT_RETURN_IF_ERROR(ParseNot(out));
    while (IsName("and")) {
      const size_t off = Next().offset;
      ExprPtr rhs;
      SEXTANT_RETURN_IF_ERROR(ParseNot(rhs));
      ExprPtr e = Make(Expr::kAnd, off);
      e->args.push_back(std::move(out));
      e->args.push_back(std::move(rhs));
      out = std::move(e);
    }
    return Status::Ok();
  }

  Status ParseNot(ExprPtr& out) {
    if (IsName("not")) {
      DepthGuard g(expr_depth_);
      SEXTANT_RETURN_IF_ERROR(CheckDepth());
      const size_t off = Next().offset;
      ExprPtr inner;
      SEXTANT_RETURN_IF_ERROR(ParseNot(inner));
      out = Make(Expr::kNot, off);
      out->args.push_back(std::move(inner));
      return Status::Ok();
    }
    return ParseCompare(out);
  }

  Status ParseCompare(ExprPtr& out) {
    SEXTANT_RETURN_IF_ERROR(ParseConcat(out));
    while (true) {
      std::string op;
      bool negated = false;
      const size_t off = Peek().offset;
      if (Peek().type == Tok::kOp &&
          (Peek().text == "==" || Peek().text == "!=" || Peek().text == "<" ||
           Peek().text == "<=" || Peek().text == ">" || Peek().text == ">=")) {
        op = Next().text;
      } else if (IsName("in")) {
        Next();
        op = "in";
      } else if (IsName("not") && Peek(1).type == Tok::kName && Peek(1).text == "in") {
        Next();
        Next();
        op = "in";
        negated = true;
      } else {
        return Status::Ok();
      }
      ExprPtr rhs;
      SEXTANT_RETURN_IF_ERROR(ParseConcat(rhs));
      ExprPtr e = Make(Expr::kBinary, off);
      e->name = op;
      e->negated = negated;
      e->args.push_back(std::move(out));
      e->args.push_back(std::move(rhs));
      out = std::move(e);
    }
  }

  Status ParseBinaryLevel(ExprPtr& out, std::initializer_list<const char*> ops,
                          Status (Parser::*next)(ExprPtr&)) {
    SEXTANT_RETURN_IF_ERROR((this->*next)(out));
    while (Peek().type == Tok::kOp) {
      const std::string& t = Peek().text;
      if (std::none_of(ops.begin(), ops.end(), [&](const char* o) { return t == o; })) break;
      const size_t off = Peek().offset;
      const std::string op = Next().text;
      ExprPtr rhs;
      SEXTANT_RETURN_IF_ERROR((this->*next)(rhs));
      ExprPtr e = Make(Expr::kBinary, off);
      e->name = op;
      e->args.push_back(std::move(out));
      e->args.push_back(std::move(rhs));
      out = std::move(e);
    }
    return Status::Ok();
  }
  Status ParseConcat(ExprPtr& out) { return ParseBinaryLevel(out, {"~"}, &Parser::ParseAdd); }
  Status ParseAdd(ExprPtr& out) { return ParseBinaryLevel(out, {"+", "-"}, &Parser::ParseMul); }
  Status ParseMul(ExprPtr& out) {
    return ParseBinaryLevel(out, {"*", "/", "//", "%"}, &Parser::ParsePow);
  }
  Status ParsePow(ExprPtr& out) { return ParseBinaryLevel(out, {"**"}, &Parser::ParseUnary); }

  // As Jinja2: a filter applies to the whole unary expression (`-3|abs` is 3).
  Status ParseUnary(ExprPtr& out) { return ParseUnaryImpl(out, true); }
  Status ParseUnaryImpl(ExprPtr& out, bool with_filter) {
    DepthGuard g(expr_depth_);
    SEXTANT_RETURN_IF_ERROR(CheckDepth());
    if (IsOp("-") || IsOp("+")) {
      const Token& t = Next();
      ExprPtr inner;
      SEXTANT_RETURN_IF_ERROR(ParseUnaryImpl(inner, false));
      out = Make(t.text == "-" ? Expr::kNeg : Expr::kPos, t.offset);
      out->args.push_back(std::move(inner));
    } else {
      SEXTANT_RETURN_IF_ERROR(ParsePrimary(out));
    }
    SEXTANT_RETURN_IF_ERROR(ParsePostfix(out));
    return with_filter ? ParseFilters(out) : Status::Ok();
  }

  Status ParseArgs(Expr& call) {
    // After '(': positional and keyword arguments up to ')'.
    while (!IsOp(")")) {
      if (Peek().type == Tok::kName && Peek(1).type == Tok::kOp && Peek(1).text == "=") {
        std::string key = Next().text;
        Next();
        ExprPtr v;
        SEXTANT_RETURN_IF_ERROR(ParseExpr(v, true));
        call.kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (!call.kwargs.empty()) {
          return Error(Peek().offset, "a positional argument after a keyword argument");
        }
        ExprPtr v;
        SEXTANT_RETURN_IF_ERROR(ParseExpr(v, true));
        call.args.push_back(std::move(v));
      }
      if (IsOp(",")) {
        Next();
      } else if (!IsOp(")")) {
        return Error(Peek().offset, "expected ',' or ')' in the arguments");
      }
    }
    Next();
    return Status::Ok();
  }

  Status ParsePostfix(ExprPtr& out) {
    while (true) {
      if (IsOp(".")) {
        Next();
        const Token& name = Next();
        if (name.type != Tok::kName && name.type != Tok::kInt) {
          return Error(name.offset, "expected an attribute name after '.'");
        }
        ExprPtr e = Make(Expr::kAttr, name.offset);
        e->name = name.text;
        e->args.push_back(std::move(out));
        out = std::move(e);
      } else if (IsOp("[")) {
        const size_t off = Next().offset;
        ExprPtr parts[3];
        int part = 0;
        bool is_slice = false;
        while (!IsOp("]")) {
          if (IsOp(":")) {
            Next();
            is_slice = true;
            if (++part > 2) return Error(Peek().offset, "too many ':' in a slice");
            continue;
          }
          if (parts[part]) return Error(Peek().offset, "expected ']'");
          SEXTANT_RETURN_IF_ERROR(ParseExpr(parts[part], true));
        }
        Next();
        ExprPtr e = Make(is_slice ? Expr::kSlice : Expr::kIndex, off);
        e->args.push_back(std::move(out));
        if (!is_slice) {
          if (!parts[0]) return Error(off, "empty subscript");
          e->args.push_back(std::move(parts[0]));
        } else {
          for (auto& p : parts) e->args.push_back(std::move(p));
        }
        out = std::move(e);
      } else if (IsOp("(")) {
        const size_t off = Next().offset;
        ExprPtr e = Make(Expr::kCall, off);
        e->args.push_back(std::move(out));
        SEXTANT_RETURN_IF_ERROR(ParseArgs(*e));
        out = std::move(e);
      } else {
        return Status::Ok();
      }
    }
  }

  static bool StartsTestArgument(const Token& t) {
    if (t.type == Tok::kString || t.type == Tok::kInt || t.type == Tok::kFloat) return true;
    if (t.type != Tok::kName) return false;
    static const char* const kStop[] = {"and", "or", "else", "if", "in", "is", "not"};
    return std::none_of(std::begin(kStop), std::end(kStop),
                        [&](const char* s) { return t.text == s; });
  }

  Status ParseFilters(ExprPtr& out) {
    while (true) {
      if (IsOp("|")) {
        Next();
        const Token& name = Next();
        if (name.type != Tok::kName) return Error(name.offset, "expected a filter name");
        ExprPtr e = Make(Expr::kFilter, name.offset);
        e->name = name.text;
        e->args.push_back(std::move(out));
        if (IsOp("(")) {
          Next();
          SEXTANT_RETURN_IF_ERROR(ParseArgs(*e));
        }
        out = std::move(e);
      } else if (IsName("is")) {
        Next();
        bool negated = false;
        if (IsName("not")) {
          Next();
          negated = true;
        }
        const Token& name = Next();
        if (name.type != Tok::kName) return Error(name.offset, "expected a test name after 'is'");
        ExprPtr e = Make(Expr::kTest, name.offset);
        e->name = name.text;
        e->negated = negated;
        e->args.push_back(std::move(out));
        if (IsOp("(")) {
          Next();
          SEXTANT_RETURN_IF_ERROR(ParseArgs(*e));
        } else if (StartsTestArgument(Peek())) {
          ExprPtr arg;
          SEXTANT_RETURN_IF_ERROR(ParsePrimary(arg));
          SEXTANT_RETURN_IF_ERROR(ParsePostfix(arg));
          e->args.push_back(std::move(arg));
        }
        out = std::move(e);
      } else {
        return Status::Ok();
      }
    }
  }

  Status ParsePrimary(ExprPtr& out) {
    const Token& t = Next();
    switch (t.type) {
      case Tok::kString: {
        std::string s = t.text;
        // Adjacent string literals concatenate, as in Python.
        while (Peek().type == Tok::kString) s += Next().text;
        out = Make(Expr::kLiteral, t.offset);
        out->literal = Value(std::move(s));
        return Status::Ok();
      }
      case Tok::kInt:
        out = Make(Expr::kLiteral, t.offset);
        out->literal = Value(t.int_value);
        return Status::Ok();
      case Tok::kFloat:
        out = Make(Expr::kLiteral, t.offset);
        out->literal = Value(t.float_value);
        return Status::Ok();
      case Tok::kName: {
        out = Make(Expr::kLiteral, t.offset);
        if (t.text == "true" || t.text == "True") {
          out->literal = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          out->literal = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          out->literal = Value::None();
        } else {
          out->kind = Expr::kName;
          out->name = t.text;
        }
        return Status::Ok();
      }
      case Tok::kOp:
        if (t.text == "(") {
          if (IsOp(")")) {
            Next();
            out = Make(Expr::kTuple, t.offset);
            return Status::Ok();
          }
          ExprPtr first;
          SEXTANT_RETURN_IF_ERROR(ParseExpr(first, true));
          if (IsOp(")")) {
            Next();
            out = std::move(first);
            return Status::Ok();
          }
          out = Make(Expr::kTuple, t.offset);
          out->args.push_back(std::move(first));
          while (IsOp(",")) {
            Next();
            if (IsOp(")")) break;
            ExprPtr e;
            SEXTANT_RETURN_IF_ERROR(ParseExpr(e, true));
            out->args.push_back(std::move(e));
          }
          return ExpectOp(")");
        }
        if (t.text == "[") {
          out = Make(Expr::kList, t.offset);
          while (!IsOp("]")) {
            ExprPtr e;
            SEXTANT_RETURN_IF_ERROR(ParseExpr(e, true));
            out->args.push_back(std::move(e));
            if (IsOp(",")) {
              Next();
            } else if (!IsOp("]")) {
              return Error(Peek().offset, "expected ',' or ']' in a list");
            }
          }
          Next();
          return Status::Ok();
        }
        if (t.text == "{") {
          out = Make(Expr::kDict, t.offset);
          while (!IsOp("}")) {
            ExprPtr k, v;
            SEXTANT_RETURN_IF_ERROR(ParseExpr(k, true));
            SEXTANT_RETURN_IF_ERROR(ExpectOp(":"));
            SEXTANT_RETURN_IF_ERROR(ParseExpr(v, true));
            out->args.push_back(std::move(k));
            out->args.push_back(std::move(v));
            if (IsOp(",")) {
              Next();
            } else if (!IsOp("}")) {
              return Error(Peek().offset, "expected ',' or '}' in a dict");
            }
          }
          Next();
          return Status::Ok();
        }
        break;
      case Tok::kEnd:
        return Error(t.offset, "unexpected end of tag, expected an expression");
    }
    return Error(t.offset, "unexpected '" + t.text + "'");
  }

  std::string_view src_;
  std::vector<Piece>& pieces_;
  size_t index_ = 0;
  const std::vector<Token>* toks_ = nullptr;
  size_t pos_ = 0;
  int expr_depth_ = 0;
  int body_depth_ = 0;
  int loop_depth_ = 0;
  size_t open_offset_ = 0;
};

// ---- Interpreter -------------------------------------------------------------------------------

struct Scope {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;

  const Value* Lookup(const std::string& name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};

enum class Flow { kNormal, kBreak, kContinue };

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Code-point boundaries of s (n + 1 offsets).
std::vector<size_t> Utf8Bounds(const std::string& s) {
  std::vector<size_t> b;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) b.push_back(i);
  }
  b.push_back(s.size());
  return b;
}

bool IsPySpace(char c) {
  return IsSpace(c) || c == '\x1c' || c == '\x1d' || c == '\x1e' || c == '\x1f';
}

std::string Strip(const std::string& s, const Value& chars, bool left, bool right) {
  const auto drop = [&](char c) {
    if (chars.is_string()) return chars.as_string().find(c) != std::string::npos;
    return IsPySpace(c);
  };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e && drop(s[b])) ++b;
  }
  if (right) {
    while (e > b && drop(s[e - 1])) --e;
  }
  return s.substr(b, e - b);
}

// The kind of a value with its article, for messages ("a string", "an int", "none").
std::string KindName(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return "an undefined value";
    case Value::Kind::kNone:
      return "none";
    case Value::Kind::kBool:
      return "a bool";
    case Value::Kind::kInt:
      return "an int";
    case Value::Kind::kFloat:
      return "a float";
    case Value::Kind::kString:
      return "a string";
    case Value::Kind::kList:
      return "a list";
    case Value::Kind::kDict:
      return "a dict";
    case Value::Kind::kNamespace:
      return "a namespace";
    case Value::Kind::kMacro:
      return "a macro";
  }
  return "a value";
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind() == Value::Kind::kInt && b.kind() == Value::Kind::kInt) {
      return a.as_int() == b.as_int();
    }
    return a.as_float() == b.as_float();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
      return true;
    case Value::Kind::kBool:
      return a.as_bool() == b.as_bool();
    case Value::Kind::kString:
      return a.as_string() == b.as_string();
    case Value::Kind::kList: {
      const auto &x = a.as_list(), &y = b.as_list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Kind::kDict: {
      const Dict &x = a.as_dict(), &y = b.as_dict();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* o = y.Find(k);
        if (o == nullptr || !Equal(v, *o)) return false;
      }
      return true;
    }
    case Value::Kind::kNamespace:
      return &a.as_dict() == &b.as_dict();
    case Value::Kind::kMacro:
      return a.as_macro() == b.as_macro();
    default:
      return false;
  }
}

// JSON as Python's json.dumps(ensure_ascii=False) writes it, the way Hugging Face's tojson does.
void ToJson(const Value& v, int indent, int depth, bool sort_keys, std::string& out) {
  const auto newline = [&](int d) {
    out += '\n';
    out.append(static_cast<size_t>(indent * d), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone:
    case Value::Kind::kMacro:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat:
      out += FloatRepr(v.as_float());
      return;
    case Value::Kind::kString: {
      out += '"';
      for (unsigned char c : v.as_string()) {
        switch (c) {
          case '"':
            out += "\\\"";
            break;
          case '\\':
            out += "\\\\";
            break;
          case '\n':
            out += "\\n";
            break;
          case '\r':
            out += "\\r";
            break;
          case '\t':
            out += "\\t";
            break;
          case '\b':
            out += "\\b";
            break;
          case '\f':
            out += "\\f";
            break;
          default:
            if (c < 0x20) {
              char buf[8];
              std::snprintf(buf, sizeof(buf), "\\u%04x", c);
              out += buf;
            } else {
              out += static_cast<char>(c);
            }
        }
      }
      out += '"';
      return;
    }
    case Value::Kind::kList: {
      const auto& l = v.as_list();
      if (l.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < l.size(); ++i) {
        if (i) out += indent > 0 ? "," : ", ";
        if (indent > 0) newline(depth + 1);
        ToJson(l[i], indent, depth + 1, sort_keys, out);
      }
      if (indent > 0) newline(depth);
      out += ']';
      return;
    }
    case Value::Kind::kDict:
    case Value::Kind::kNamespace: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.as_dict().items) items.push_back(&kv);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (sort_keys) {
        std::sort(items.begin(), items.end(),
                  [](const auto* a, const auto* b) { return a->first < b->first; });
      }
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent > 0 ? "," : ", ";
        if (indent > 0) newline(depth + 1);
        ToJson(Value(items[i]->first), indent, depth + 1, sort_keys, out);
        out += ": ";
        ToJson(items[i]->second, indent, depth + 1, sort_keys, out);
      }
      if (indent > 0) newline(depth);
      out += '}';
      return;
    }
  }
}

class Interpreter {
 public:
  Interpreter(std::string_view src, const RenderLimits& limits) : src_(src), limits_(limits) {}

  Status Run(const NodeList& nodes, Scope& globals, std::string& out) {
    root_ = &globals;
    Flow flow = Flow::kNormal;
    return Exec(nodes, globals, out, flow);
  }

 private:
  using Args = std::vector<Value>;
  using Kwargs = std::vector<std::pair<std::string, Value>>;

  Status Error(size_t offset, const std::string& what) const {
    return Status::InvalidArgument(what + " at " + Where(src_, offset));
  }

  Status Step(size_t offset) {
    if (++steps_ > limits_.max_steps) {
      return Status::ResourceExhausted("the template ran past " +
                                       std::to_string(limits_.max_steps) + " steps at " +
                                       Where(src_, offset));
    }
    return Status::Ok();
  }

  Status Emit(std::string& out, std::string_view s, size_t offset) {
    if (out.size() + s.size() > limits_.max_output_bytes) {
      return Status::ResourceExhausted("the template's output exceeds " +
                                       std::to_string(limits_.max_output_bytes) + " bytes at " +
                                       Where(src_, offset));
    }
    out.append(s);
    return Status::Ok();
  }

  Status Exec(const NodeList& nodes, Scope& scope, std::string& out, Flow& flow) {
    for (const auto& node : nodes) {
      SEXTANT_RETURN_IF_ERROR(Step(node->offset));
      const Node& n = *node;
      switch (n.kind) {
        case Node::kText:
          SEXTANT_RETURN_IF_ERROR(Emit(out, n.text, n.offset));
          break;
        case Node::kOutput: {
          Value v;
          SEXTANT_RETURN_IF_ERROR(Eval(*n.exprs[0], scope, v));
          SEXTANT_RETURN_IF_ERROR(Emit(out, v.Str(), n.offset));
          break;
        }
        case Node::kIf: {
          size_t taken = n.bodies.size();
          for (size_t i = 0; i < n.exprs.size(); ++i) {
            Value c;
            SEXTANT_RETURN_IF_ERROR(Eval(*n.exprs[i], scope, c));
            if (c.Truthy()) {
              taken = i;
              break;
            }
          }
          if (taken == n.bodies.size() && n.bodies.size() > n.exprs.size()) taken = n.exprs.size();
          if (taken < n.bodies.size()) {
            SEXTANT_RETURN_IF_ERROR(Exec(n.bodies[taken], scope, out, flow));
          }
          break;
        }
        case Node::kFor:
          SEXTANT_RETURN_IF_ERROR(ExecFor(n, scope, out));
          break;
        case Node::kSet: {
          Value v;
          SEXTANT_RETURN_IF_ERROR(Eval(*n.exprs[0], scope, v));
          SEXTANT_RETURN_IF_ERROR(Assign(n, scope, std::move(v)));
          break;
        }
        case Node::kSetBlock: {
          std::string text;
          Flow f = Flow::kNormal;
          SEXTANT_RETURN_IF_ERROR(Exec(n.bodies[0], scope, text, f));
          SEXTANT_RETURN_IF_ERROR(Assign(n, scope, Value(std::move(text))));
          break;
        }
        case Node::kMacro:
          scope.vars[n.targets[0]] = Value::Macro(&n);
          break;
        case Node::kBreak:
          flow = Flow::kBreak;
          return Status::Ok();
        case Node::kContinue:
          flow = Flow::kContinue;
          return Status::Ok();
        case Node::kBlock:
          SEXTANT_RETURN_IF_ERROR(Exec(n.bodies[0], scope, out, flow));
          break;
      }
      if (flow != Flow::kNormal) return Status::Ok();
    }
    return Status::Ok();
  }

  Status Assign(const Node& n, Scope& scope, Value v) {
    if (!n.text.empty()) {
      const Value* target = scope.Lookup(n.targets[0]);
      if (target == nullptr || target->kind() != Value::Kind::kNamespace) {
        return Error(n.offset, "'" + n.targets[0] +
                                   "' is not a namespace; only namespace() "
                                   "attributes can be assigned");
      }
      target->mutable_dict().Set(n.text, std::move(v));
      return Status::Ok();
    }
    if (n.targets.size() == 1) {
      scope.vars[n.targets[0]] = std::move(v);
      return Status::Ok();
    }
    return Unpack(n.targets, v, scope, n.offset);
  }

  Status Unpack(const std::vector<std::string>& names, const Value& v, Scope& scope,
                size_t offset) {
    if (v.kind() != Value::Kind::kList || v.as_list().size() != names.size()) {
      return Error(offset, "cannot unpack " + KindName(v) + " into " +
                               std::to_string(names.size()) + " names");
    }
    for (size_t i = 0; i < names.size(); ++i) scope.vars[names[i]] = v.as_list()[i];
    return Status::Ok();
  }

  Status Iterate(const Value& v, size_t offset, std::vector<Value>& items) {
    switch (v.kind()) {
      case Value::Kind::kUndefined:
      case Value::Kind::kNone:
        if (v.is_none()) return Error(offset, "cannot iterate over none");
        return Status::Ok();
      case Value::Kind::kList:
        items = v.as_list();
        return Status::Ok();
      case Value::Kind::kDict:
        for (const auto& kv : v.as_dict().items) items.emplace_back(kv.first);
        return Status::Ok();
      case Value::Kind::kString: {
        const std::vector<size_t> b = Utf8Bounds(v.as_string());
        for (size_t i = 0; i + 1 < b.size(); ++i) {
          items.emplace_back(v.as_string().substr(b[i], b[i + 1] - b[i]));
        }
        return Status::Ok();
      }
      default:
        return Error(offset, "cannot iterate over " + KindName(v));
    }
  }

  Status ExecFor(const Node& n, Scope& scope, std::string& out) {
    Value iterable;
    SEXTANT_RETURN_IF_ERROR(Eval(*n.exprs[0], scope, iterable));
    std::vector<Value> all;
    SEXTANT_RETURN_IF_ERROR(Iterate(iterable, n.exprs[0]->offset, all));
    std::vector<Value> items;
    Scope loop_scope;
    loop_scope.parent = &scope;
    const auto bind = [&](const Value& item) -> Status {
      if (n.targets.size() == 1) {
        loop_scope.vars[n.targets[0]] = item;
        return Status::Ok();
      }
      return Unpack(n.targets, item, loop_scope, n.offset);
    };
    if (n.exprs.size() > 1) {  // `for x in xs if cond`: the loop sees only the items that pass
      for (const Value& item : all) {
        SEXTANT_RETURN_IF_ERROR(bind(item));
        Value keep;
        SEXTANT_RETURN_IF_ERROR(Eval(*n.exprs[1], loop_scope, keep));
        if (keep.Truthy()) items.push_back(item);
      }
    } else {
      items = std::move(all);
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      SEXTANT_RETURN_IF_ERROR(Step(n.offset));
      loop_scope.vars.clear();
      SEXTANT_RETURN_IF_ERROR(bind(items[static_cast<size_t>(i)]));
      Dict loop;
      loop.Set("index", Value(i + 1));
      loop.Set("index0", Value(i));
      loop.Set("revindex", Value(len - i));
      loop.Set("revindex0", Value(len - i - 1));
      loop.Set("first", Value(i == 0));
      loop.Set("last", Value(i == len - 1));
      loop.Set("length", Value(len));
      loop.Set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value());
      loop.Set("nextitem", i + 1 < len ? items[static_cast<size_t>(i + 1)] : Value());
      loop_scope.vars["loop"] = Value(std::move(loop));
      Flow flow = Flow::kNormal;
      SEXTANT_RETURN_IF_ERROR(Exec(n.bodies[0], loop_scope, out, flow));
      if (flow == Flow::kBreak) break;
    }
    if (len == 0 && n.bodies.size() > 1) {
      Flow flow = Flow::kNormal;
      SEXTANT_RETURN_IF_ERROR(Exec(n.bodies[1], scope, out, flow));
    }
    return Status::Ok();
  }

  // ---- expressions

  Status Eval(const Expr& e, Scope& scope, Value& out) {
    if (++depth_ > limits_.max_depth) {
      --depth_;
      return Status::ResourceExhausted("the template nests deeper than " +
                                       std::to_string(limits_.max_depth) + " at " +
                                       Where(src_, e.offset));
    }
    Status s = Step(e.offset);
    if (s.ok()) s = EvalInner(e, scope, out);
    --depth_;
    return s;
  }

  Status EvalInner(const Expr& e, Scope& scope, Value& out) {
    switch (e.kind) {
      case Expr::kLiteral:
        out = e.literal;
        return Status::Ok();
      case Expr::kName: {
        const Value* v = scope.Lookup(e.name);
        out = v != nullptr ? *v : Value();
        return Status::Ok();
      }
      case Expr::kList:
      case Expr::kTuple: {
        std::vector<Value> items;
        for (const auto& a : e.args) {
          Value v;
          SEXTANT_RETURN_IF_ERROR(Eval(*a, scope, v));
          items.push_back(std::move(v));
        }
        out = Value(std::move(items));
        return Status::Ok();
      }
      case Expr::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k, v;
          SEXTANT_RETURN_IF_ERROR(Eval(*e.args[i], scope, k));
          SEXTANT_RETURN_IF_ERROR(Eval(*e.args[i + 1], scope, v));
          if (!k.is_string()) return Error(e.args[i]->offset, "dict keys must be strings");
          d.Set(k.as_string(), std::move(v));
        }
        out = Value(std::move(d));
        return Status::Ok();
      }
      case Expr::kAttr: {
        Value obj;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, obj));
        return GetItem(obj, Value(e.name), e.offset, true, out);
      }
      case Expr::kIndex: {
        Value obj, key;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, obj));
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[1], scope, key));
        return GetItem(obj, key, e.offset, false, out);
      }
      case Expr::kSlice:
        return EvalSlice(e, scope, out);
      case Expr::kCall:
        return EvalCall(e, scope, out);
      case Expr::kFilter: {
        Value v;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, v));
        Args args;
        Kwargs kwargs;
        SEXTANT_RETURN_IF_ERROR(EvalArgs(e, 1, scope, args, kwargs));
        return ApplyFilter(e.name, v, args, kwargs, e.offset, out);
      }
      case Expr::kTest: {
        Value v;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, v));
        Args args;
        Kwargs kwargs;
        SEXTANT_RETURN_IF_ERROR(EvalArgs(e, 1, scope, args, kwargs));
        bool result = false;
        SEXTANT_RETURN_IF_ERROR(ApplyTest(e.name, v, args, e.offset, result));
        out = Value(result != e.negated);
        return Status::Ok();
      }
      case Expr::kNot: {
        Value v;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, v));
        out = Value(!v.Truthy());
        return Status::Ok();
      }
      case Expr::kNeg:
      case Expr::kPos: {
        Value v;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, v));
        if (!v.is_number()) return Error(e.offset, "unary minus of " + KindName(v));
        if (e.kind == Expr::kPos) {
          out = v;
        } else if (v.kind() == Value::Kind::kInt) {
          out = Value(-v.as_int());
        } else {
          out = Value(-v.as_float());
        }
        return Status::Ok();
      }
      case Expr::kAnd:
      case Expr::kOr: {
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, out));
        if (out.Truthy() == (e.kind == Expr::kOr)) return Status::Ok();
        return Eval(*e.args[1], scope, out);
      }
      case Expr::kCond: {
        Value c;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[1], scope, c));
        if (c.Truthy()) return Eval(*e.args[0], scope, out);
        if (e.args[2]) return Eval(*e.args[2], scope, out);
        out = Value();
        return Status::Ok();
      }
      case Expr::kBinary: {
        Value a, b;
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, a));
        SEXTANT_RETURN_IF_ERROR(Eval(*e.args[1], scope, b));
        return Binary(e.name, a, b, e.negated, e.offset, out);
      }
    }
    return Error(e.offset, "unknown expression");
  }

  Status EvalArgs(const Expr& e, size_t first, Scope& scope, Args& args, Kwargs& kwargs) {
    for (size_t i = first; i < e.args.size(); ++i) {
      Value v;
      SEXTANT_RETURN_IF_ERROR(Eval(*e.args[i], scope, v));
      args.push_back(std::move(v));
    }
    for (const auto& [k, x] : e.kwargs) {
      Value v;
      SEXTANT_RETURN_IF_ERROR(Eval(*x, scope, v));
      kwargs.emplace_back(k, std::move(v));
    }
    return Status::Ok();
  }

  Status GetItem(const Value& obj, const Value& key, size_t offset, bool attribute, Value& out) {
    switch (obj.kind()) {
      case Value::Kind::kDict:
      case Value::Kind::kNamespace: {
        if (!key.is_string()) {
          out = Value();
          return Status::Ok();
        }
        const Value* v = obj.as_dict().Find(key.as_string());
        out = v != nullptr ? *v : Value();
        return Status::Ok();
      }
      case Value::Kind::kList:
      case Value::Kind::kString: {
        if (key.kind() != Value::Kind::kInt) {
          if (attribute) {  // `.attr` of a list or string: undefined (methods are calls)
            out = Value();
            return Status::Ok();
          }
          return Error(offset, "the index of " + KindName(obj) + " must be an integer, not " +
                                   KindName(key));
        }
        if (obj.kind() == Value::Kind::kList) {
          const auto& l = obj.as_list();
          int64_t i = key.as_int();
          if (i < 0) i += static_cast<int64_t>(l.size());
          if (i < 0 || i >= static_cast<int64_t>(l.size())) {
            return Error(offset, "list index " + std::to_string(key.as_int()) +
                                     " out of range (length " + std::to_string(l.size()) + ")");
          }
          out = l[static_cast<size_t>(i)];
          return Status::Ok();
        }
        const std::vector<size_t> b = Utf8Bounds(obj.as_string());
        const int64_t n = static_cast<int64_t>(b.size()) - 1;
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) {
          return Error(offset, "string index " + std::to_string(key.as_int()) + " out of range");
        }
        out = Value(obj.as_string().substr(
            b[static_cast<size_t>(i)], b[static_cast<size_t>(i) + 1] - b[static_cast<size_t>(i)]));
        return Status::Ok();
      }
      case Value::Kind::kUndefined:
        return Error(offset, "'" + key.Str() + "' of an undefined value");
      case Value::Kind::kNone:
        return Error(offset, "'" + key.Str() + "' of none");
      default:
        out = Value();
        return Status::Ok();
    }
  }

  Status EvalSlice(const Expr& e, Scope& scope, Value& out) {
    Value obj;
    SEXTANT_RETURN_IF_ERROR(Eval(*e.args[0], scope, obj));
    std::optional<int64_t> parts[3];
    for (int i = 0; i < 3; ++i) {
      if (!e.args[1 + i]) continue;
      Value v;
      SEXTANT_RETURN_IF_ERROR(Eval(*e.args[1 + i], scope, v));
      if (v.is_none()) continue;
      if (v.kind() != Value::Kind::kInt) return Error(e.offset, "slice bounds must be integers");
      parts[i] = v.as_int();
    }
    const int64_t step = parts[2].value_or(1);
    if (step == 0) return Error(e.offset, "slice step cannot be zero");
    std::vector<size_t> bounds;
    int64_t n = 0;
    if (obj.kind() == Value::Kind::kList) {
      n = static_cast<int64_t>(obj.as_list().size());
    } else if (obj.is_string()) {
      bounds = Utf8Bounds(obj.as_string());
      n = static_cast<int64_t>(bounds.size()) - 1;
    } else {
      return Error(e.offset, "cannot slice " + KindName(obj));
    }
    // Python's slice.indices().
    const auto norm = [&](std::optional<int64_t> v, int64_t def, int64_t lo, int64_t hi) {
      if (!v) return def;
      int64_t x = *v;
      if (x < 0) x += n;
      return std::clamp(x, lo, hi);
    };
    int64_t start, stop;
    if (step > 0) {
      start = norm(parts[0], 0, 0, n);
      stop = norm(parts[1], n, 0, n);
    } else {
      start = norm(parts[0], n - 1, -1, n - 1);
      stop = norm(parts[1], -1, -1, n - 1);
    }
    std::vector<int64_t> idx;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) idx.push_back(i);
    if (obj.kind() == Value::Kind::kList) {
      std::vector<Value> items;
      for (int64_t i : idx) items.push_back(obj.as_list()[static_cast<size_t>(i)]);
      out = Value(std::move(items));
    } else {
      std::string s;
      for (int64_t i : idx) {
        const size_t a = bounds[static_cast<size_t>(i)], b = bounds[static_cast<size_t>(i) + 1];
        s.append(obj.as_string(), a, b - a);
      }
      out = Value(std::move(s));
    }
    return Status::Ok();
  }

  Status Binary(const std::string& op, const Value& a, const Value& b, bool negated, size_t offset,
                Value& out) {
    if (op == "==" || op == "!=") {
      out = Value(Equal(a, b) == (op == "=="));
      return Status::Ok();
    }
    if (op == "in") {
      bool found = false;
      if (b.is_string()) {
        if (!a.is_string()) {
          return Error(offset, "'in <string>' requires a string on the left, not " + KindName(a));
        }
        found = b.as_string().find(a.as_string()) != std::string::npos;
      } else if (b.kind() == Value::Kind::kList) {
        found = std::any_of(b.as_list().begin(), b.as_list().end(),
                            [&](const Value& x) { return Equal(a, x); });
      } else if (b.kind() == Value::Kind::kDict || b.kind() == Value::Kind::kNamespace) {
        found = a.is_string() && b.as_dict().Find(a.as_string()) != nullptr;
      } else if (!b.is_undefined()) {
        return Error(offset, "'in' needs a string, list or dict on the right, not " + KindName(b));
      }
      out = Value(found != negated);
      return Status::Ok();
    }
    if (op == "<" || op == "<=" || op == ">" || op == ">=") {
      int cmp;
      if (a.is_number() && b.is_number()) {
        cmp = a.as_float() < b.as_float() ? -1 : (a.as_float() > b.as_float() ? 1 : 0);
        if (a.kind() == Value::Kind::kInt && b.kind() == Value::Kind::kInt) {
          cmp = a.as_int() < b.as_int() ? -1 : (a.as_int() > b.as_int() ? 1 : 0);
        }
      } else if (a.is_string() && b.is_string()) {
        cmp = a.as_string().compare(b.as_string());
      } else {
        return Error(offset, "cannot compare " + KindName(a) + " with " + KindName(b));
      }
      out = Value(op == "<" ? cmp < 0 : op == "<=" ? cmp <= 0 : op == ">" ? cmp > 0 : cmp >= 0);
      return Status::Ok();
    }
    if (op == "~") {
      out = Value(a.Str() + b.Str());
      return Status::Ok();
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        out = Value(a.as_string() + b.as_string());
        return Status::Ok();
      }
      if (a.kind() == Value::Kind::kList && b.kind() == Value::Kind::kList) {
        std::vector<Value> items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        out = Value(std::move(items));
        return Status::Ok();
      }
    }
    if (op == "*" && ((a.is_string() && b.kind() == Value::Kind::kInt) ||
                      (b.is_string() && a.kind() == Value::Kind::kInt))) {
      const std::string& s = a.is_string() ? a.as_string() : b.as_string();
      const int64_t n = a.is_string() ? b.as_int() : a.as_int();
      if (n > 0 && s.size() * static_cast<uint64_t>(n) > limits_.max_output_bytes) {
        return Error(offset, "string repetition too large");
      }
      std::string r;
      for (int64_t i = 0; i < n; ++i) r += s;
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (!a.is_number() || !b.is_number()) {
      return Error(offset, "cannot apply '" + op + "' to " + KindName(a) + " and " + KindName(b));
    }
    const bool ints = a.kind() == Value::Kind::kInt && b.kind() == Value::Kind::kInt;
    if (op == "/") {
      if (b.as_float() == 0) return Error(offset, "division by zero");
      out = Value(a.as_float() / b.as_float());
      return Status::Ok();
    }
    if (op == "//" || op == "%") {
      if (b.as_float() == 0) return Error(offset, "division by zero");
      if (ints) {
        const int64_t x = a.as_int(), y = b.as_int();
        int64_t q = x / y, r = x % y;
        if (r != 0 && ((r < 0) != (y < 0))) {
          --q;
          r += y;
        }
        out = Value(op == "//" ? q : r);
      } else {
        const double q = std::floor(a.as_float() / b.as_float());
        out = Value(op == "//" ? q : a.as_float() - q * b.as_float());
      }
      return Status::Ok();
    }
    if (op == "**") {
      if (ints && b.as_int() >= 0) {
        int64_t r = 1;
        for (int64_t i = 0; i < b.as_int() && i < 64; ++i) r *= a.as_int();
        out = Value(r);
      } else {
        out = Value(std::pow(a.as_float(), b.as_float()));
      }
      return Status::Ok();
    }
    if (ints) {
      const int64_t x = a.as_int(), y = b.as_int();
      out = Value(op == "+" ? x + y : op == "-" ? x - y : x * y);
    } else {
      const double x = a.as_float(), y = b.as_float();
      out = Value(op == "+" ? x + y : op == "-" ? x - y : x * y);
    }
    return Status::Ok();
  }

  // ---- calls

  static const Value* Kwarg(const Kwargs& kwargs, std::string_view name) {
    for (const auto& [k, v] : kwargs) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  // Argument `i` (positional) or `name` (keyword), or undefined.
  static Value Arg(const Args& args, const Kwargs& kwargs, size_t i, std::string_view name) {
    if (i < args.size()) return args[i];
    if (const Value* v = Kwarg(kwargs, name)) return *v;
    return Value();
  }

  Status EvalCall(const Expr& e, Scope& scope, Value& out) {
    const Expr& callee = *e.args[0];
    Args args;
    Kwargs kwargs;
    if (callee.kind == Expr::kAttr) {
      Value obj;
      SEXTANT_RETURN_IF_ERROR(Eval(*callee.args[0], scope, obj));
      if (obj.is_string() || obj.kind() == Value::Kind::kDict || obj.kind() == Value::Kind::kList) {
        SEXTANT_RETURN_IF_ERROR(EvalArgs(e, 1, scope, args, kwargs));
        return CallMethod(obj, callee.name, args, kwargs, callee.offset, out);
      }
      Value fn;
      SEXTANT_RETURN_IF_ERROR(GetItem(obj, Value(callee.name), callee.offset, true, fn));
      SEXTANT_RETURN_IF_ERROR(EvalArgs(e, 1, scope, args, kwargs));
      return CallValue(fn, callee.name, args, kwargs, e.offset, out);
    }
    SEXTANT_RETURN_IF_ERROR(EvalArgs(e, 1, scope, args, kwargs));
    if (callee.kind == Expr::kName) {
      if (const Value* v = scope.Lookup(callee.name)) {
        return CallValue(*v, callee.name, args, kwargs, e.offset, out);
      }
      return CallGlobal(callee.name, args, kwargs, e.offset, out);
    }
    Value fn;
    SEXTANT_RETURN_IF_ERROR(Eval(callee, scope, fn));
    return CallValue(fn, "expression", args, kwargs, e.offset, out);
  }

  Status CallValue(const Value& fn, const std::string& name, const Args& args, const Kwargs& kwargs,
                   size_t offset, Value& out) {
    if (fn.kind() != Value::Kind::kMacro) {
      return Error(offset, "'" + name + "' is not callable (" + KindName(fn) + ")");
    }
    const Node& m = *static_cast<const Node*>(fn.as_macro());
    if (args.size() > m.params.size()) {
      return Error(offset, "macro '" + m.targets[0] + "' takes " + std::to_string(m.params.size()) +
                               " arguments, " + std::to_string(args.size()) + " given");
    }
    Scope local;
    local.parent = root_;
    for (size_t i = 0; i < m.params.size(); ++i) {
      Value v;
      if (i < args.size()) {
        v = args[i];
      } else if (const Value* k = Kwarg(kwargs, m.params[i])) {
        v = *k;
      } else if (m.exprs[i]) {
        SEXTANT_RETURN_IF_ERROR(Eval(*m.exprs[i], local, v));
      }
      local.vars[m.params[i]] = std::move(v);
    }
    for (const auto& [k, v] : kwargs) {
      if (std::find(m.params.begin(), m.params.end(), k) == m.params.end()) {
        return Error(offset, "macro '" + m.targets[0] + "' has no parameter '" + k + "'");
      }
    }
    if (++depth_ > limits_.max_depth) {
      --depth_;
      return Status::ResourceExhausted("macro calls nested deeper than " +
                                       std::to_string(limits_.max_depth) + " at " +
                                       Where(src_, offset));
    }
    std::string text;
    Flow flow = Flow::kNormal;
    Status s = Exec(m.bodies[0], local, text, flow);
    --depth_;
    SEXTANT_RETURN_IF_ERROR(s);
    out = Value(std::move(text));
    return Status::Ok();
  }

  Status CallGlobal(const std::string& name, const Args& args, const Kwargs& kwargs, size_t offset,
                    Value& out) {
    if (name == "raise_exception") {
      return Status::InvalidArgument(
          "the chat template refused the conversation: " + Arg(args, kwargs, 0, "message").Str() +
          " (raised at " + Where(src_, offset) + ")");
    }
    if (name == "namespace" || name == "dict") {
      Dict d;
      for (const auto& [k, v] : kwargs) d.Set(k, v);
      if (!args.empty()) {
        if (args[0].kind() != Value::Kind::kDict) {
          return Error(offset, name + "() takes keyword arguments or one dict");
        }
        for (const auto& [k, v] : args[0].as_dict().items) d.Set(k, v);
      }
      out = name == "namespace" ? Value::Namespace(std::move(d)) : Value(std::move(d));
      return Status::Ok();
    }
    if (name == "range") {
      int64_t start = 0, stop = 0, step = 1;
      for (const Value& a : args) {
        if (a.kind() != Value::Kind::kInt) return Error(offset, "range() takes integers");
      }
      if (args.size() == 1) {
        stop = args[0].as_int();
      } else if (args.size() >= 2) {
        start = args[0].as_int();
        stop = args[1].as_int();
        if (args.size() > 2) step = args[2].as_int();
      } else {
        return Error(offset, "range() needs at least one argument");
      }
      if (step == 0) return Error(offset, "range() step cannot be zero");
      std::vector<Value> items;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
        SEXTANT_RETURN_IF_ERROR(Step(offset));
        items.emplace_back(i);
      }
      out = Value(std::move(items));
      return Status::Ok();
    }
    return Error(offset, "unknown function '" + name + "'");
  }

  Status CallMethod(const Value& obj, const std::string& name, const Args& args,
                    const Kwargs& kwargs, size_t offset, Value& out) {
    if (obj.kind() == Value::Kind::kDict) {
      const Dict& d = obj.as_dict();
      if (name == "items" || name == "keys" || name == "values") {
        std::vector<Value> items;
        for (const auto& [k, v] : d.items) {
          if (name == "items") {
            items.emplace_back(std::vector<Value>{Value(k), v});
          } else {
            items.push_back(name == "keys" ? Value(k) : v);
          }
        }
        out = Value(std::move(items));
        return Status::Ok();
      }
      if (name == "get") {
        const Value key = Arg(args, kwargs, 0, "key");
        const Value* v = key.is_string() ? d.Find(key.as_string()) : nullptr;
        out = v != nullptr ? *v : (args.size() > 1 ? args[1] : Value::None());
        return Status::Ok();
      }
      // A dict entry holding a macro, called as a method.
      if (const Value* v = d.Find(name); v != nullptr && v->kind() == Value::Kind::kMacro) {
        return CallValue(*v, name, args, kwargs, offset, out);
      }
      return Error(offset, "unknown dict method '" + name + "'");
    }
    if (obj.kind() == Value::Kind::kList) {
      return Error(offset, "unknown list method '" + name + "'");
    }
    const std::string& s = obj.as_string();
    const Value a0 = Arg(args, kwargs, 0, "");
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
      out = Value(Strip(s, a0, name != "rstrip", name != "lstrip"));
      return Status::Ok();
    }
    if (name == "upper" || name == "lower") {
      std::string r = s;
      for (char& c : r)
        c = static_cast<char>(name == "upper" ? std::toupper(static_cast<unsigned char>(c))
                                              : std::tolower(static_cast<unsigned char>(c)));
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "title" || name == "capitalize") {
      return ApplyFilter(name, obj, {}, {}, offset, out);
    }
    if (name == "startswith" || name == "endswith") {
      std::vector<Value> options;
      if (a0.kind() == Value::Kind::kList) {
        options = a0.as_list();
      } else {
        options.push_back(a0);
      }
      bool r = false;
      for (const Value& o : options) {
        if (!o.is_string()) return Error(offset, name + "() takes a string or a tuple of strings");
        const std::string& p = o.as_string();
        if (p.size() <= s.size() &&
            (name == "startswith" ? s.compare(0, p.size(), p) == 0
                                  : s.compare(s.size() - p.size(), p.size(), p) == 0)) {
          r = true;
        }
      }
      out = Value(r);
      return Status::Ok();
    }
    if (name == "split") {
      const Value sep = Arg(args, kwargs, 0, "sep");
      const Value maxv = Arg(args, kwargs, 1, "maxsplit");
      int64_t max = maxv.kind() == Value::Kind::kInt ? maxv.as_int() : -1;
      std::vector<Value> parts;
      if (sep.is_string()) {
        const std::string& p = sep.as_string();
        if (p.empty()) return Error(offset, "split() separator is empty");
        size_t start = 0;
        while (max != 0) {
          const size_t k = s.find(p, start);
          if (k == std::string::npos) break;
          parts.emplace_back(s.substr(start, k - start));
          start = k + p.size();
          if (max > 0) --max;
        }
        parts.emplace_back(s.substr(start));
      } else {  // runs of whitespace, leading and trailing ones dropped
        size_t i = 0;
        while (i < s.size()) {
          while (i < s.size() && IsPySpace(s[i])) ++i;
          if (i >= s.size()) break;
          if (max == 0) {
            std::string rest = s.substr(i);
            while (!rest.empty() && IsPySpace(rest.back())) rest.pop_back();
            parts.emplace_back(std::move(rest));
            break;
          }
          size_t j = i;
          while (j < s.size() && !IsPySpace(s[j])) ++j;
          parts.emplace_back(s.substr(i, j - i));
          i = j;
          if (max > 0) --max;
        }
      }
      out = Value(std::move(parts));
      return Status::Ok();
    }
    if (name == "replace") {
      return ApplyFilter("replace", obj, args, kwargs, offset, out);
    }
    if (name == "find" || name == "count") {
      if (!a0.is_string()) return Error(offset, name + "() takes a string");
      if (name == "find") {
        const size_t k = s.find(a0.as_string());
        out = Value(k == std::string::npos ? int64_t{-1}
                                           : static_cast<int64_t>(Utf8Length(s.substr(0, k))));
      } else {
        int64_t n = 0;
        const std::string& p = a0.as_string();
        if (p.empty()) {
          n = static_cast<int64_t>(Utf8Length(s)) + 1;
        } else {
          for (size_t k = s.find(p); k != std::string::npos; k = s.find(p, k + p.size())) ++n;
        }
        out = Value(n);
      }
      return Status::Ok();
    }
    if (name == "join") {
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(a0, offset, items));
      std::string r;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) r += s;
        r += items[i].Str();
      }
      out = Value(std::move(r));
      return Status::Ok();
    }
    return Error(offset, "unknown string method '" + name + "'");
  }

  // ---- filters and tests

  Status AttributeOf(const Value& item, const std::string& attribute, size_t offset, Value& out) {
    Value cur = item;
    size_t start = 0;
    while (true) {
      const size_t dot = attribute.find('.', start);
      const std::string part =
          attribute.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      Value key(part);
      if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
        key = Value(static_cast<int64_t>(std::stoll(part)));
      }
      Value next;
      if (cur.is_undefined()) {
        next = Value();
      } else {
        SEXTANT_RETURN_IF_ERROR(GetItem(cur, key, offset, true, next));
      }
      cur = std::move(next);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    out = std::move(cur);
    return Status::Ok();
  }

  Status ApplyFilter(const std::string& name, const Value& v, const Args& args,
                     const Kwargs& kwargs, size_t offset, Value& out) {
    if (name == "trim") {
      if (!v.is_string() && !v.is_undefined()) {
        return Error(offset, "trim of " + KindName(v));
      }
      out = Value(Strip(v.Str(), Arg(args, kwargs, 0, "chars"), true, true));
      return Status::Ok();
    }
    if (name == "length" || name == "count") {
      switch (v.kind()) {
        case Value::Kind::kString:
          out = Value(static_cast<int64_t>(Utf8Length(v.as_string())));
          return Status::Ok();
        case Value::Kind::kList:
          out = Value(static_cast<int64_t>(v.as_list().size()));
          return Status::Ok();
        case Value::Kind::kDict:
        case Value::Kind::kNamespace:
          out = Value(static_cast<int64_t>(v.as_dict().items.size()));
          return Status::Ok();
        case Value::Kind::kUndefined:
          out = Value(int64_t{0});
          return Status::Ok();
        default:
          return Error(offset, "length of " + KindName(v));
      }
    }
    if (name == "tojson") {
      const Value indent = Arg(args, kwargs, 0, "indent");
      const Value sort = Arg(args, kwargs, 99, "sort_keys");
      std::string s;
      ToJson(v, indent.kind() == Value::Kind::kInt ? static_cast<int>(indent.as_int()) : 0, 0,
             sort.Truthy(), s);
      out = Value(std::move(s));
      return Status::Ok();
    }
    if (name == "upper" || name == "lower") {
      return CallMethod(Value(v.Str()), name, {}, {}, offset, out);
    }
    if (name == "capitalize" || name == "title") {
      std::string s = v.Str();
      bool start = true;
      for (size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (name == "capitalize") {
          s[i] = static_cast<char>(i == 0 ? std::toupper(c) : std::tolower(c));
        } else {
          s[i] = static_cast<char>(start ? std::toupper(c) : std::tolower(c));
          start = !std::isalnum(c) && c < 0x80;
        }
      }
      out = Value(std::move(s));
      return Status::Ok();
    }
    if (name == "default" || name == "d") {
      const bool boolean = Arg(args, kwargs, 1, "boolean").Truthy();
      const bool use_default = v.is_undefined() || (boolean && !v.Truthy());
      out = use_default ? Arg(args, kwargs, 0, "default_value") : v;
      if (use_default && out.is_undefined() && args.empty()) out = Value("");
      return Status::Ok();
    }
    if (name == "first" || name == "last") {
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      out = items.empty() ? Value() : (name == "first" ? items.front() : items.back());
      return Status::Ok();
    }
    if (name == "join") {
      const Value attribute = Arg(args, kwargs, 1, "attribute");
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      const std::string sep = Arg(args, kwargs, 0, "d").Str();
      std::string r;
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) r += sep;
        Value item = items[i];
        if (attribute.is_string()) {
          SEXTANT_RETURN_IF_ERROR(AttributeOf(items[i], attribute.as_string(), offset, item));
        }
        r += item.Str();
      }
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "replace") {
      const Value from = Arg(args, kwargs, 0, "old"), to = Arg(args, kwargs, 1, "new");
      const Value count = Arg(args, kwargs, 2, "count");
      if (!from.is_string() || !to.is_string()) return Error(offset, "replace() takes strings");
      std::string s = v.Str();
      std::string r;
      int64_t left = count.kind() == Value::Kind::kInt ? count.as_int() : -1;
      const std::string& f = from.as_string();
      size_t start = 0;
      if (f.empty()) {
        out = Value(s);
        return Status::Ok();
      }
      while (left != 0) {
        const size_t k = s.find(f, start);
        if (k == std::string::npos) break;
        r.append(s, start, k - start);
        r += to.as_string();
        start = k + f.size();
        if (left > 0) --left;
      }
      r.append(s, start, std::string::npos);
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "string" || name == "safe" || name == "e" || name == "escape") {
      if (name == "e" || name == "escape") return Error(offset, "unknown filter '" + name + "'");
      out = v.is_string() || name == "safe" ? v : Value(v.Str());
      return Status::Ok();
    }
    if (name == "int" || name == "float") {
      double d = 0;
      bool ok = true;
      if (v.is_number()) {
        d = v.as_float();
      } else if (v.is_string()) {
        char* end = nullptr;
        d = std::strtod(v.as_string().c_str(), &end);
        ok = end != v.as_string().c_str();
      } else if (v.kind() == Value::Kind::kBool) {
        d = v.as_bool() ? 1 : 0;
      } else {
        ok = false;
      }
      if (!ok) {
        const Value def = Arg(args, kwargs, 0, "default");
        out = def.is_undefined() ? (name == "int" ? Value(int64_t{0}) : Value(0.0)) : def;
        return Status::Ok();
      }
      if (name == "int") {
        out = v.kind() == Value::Kind::kInt ? v : Value(static_cast<int64_t>(std::trunc(d)));
      } else {
        out = Value(d);
      }
      return Status::Ok();
    }
    if (name == "abs") {
      if (!v.is_number()) return Error(offset, "abs of " + KindName(v));
      out = v.kind() == Value::Kind::kInt ? Value(v.as_int() < 0 ? -v.as_int() : v.as_int())
                                          : Value(std::fabs(v.as_float()));
      return Status::Ok();
    }
    if (name == "round") {
      if (!v.is_number()) return Error(offset, "round of " + KindName(v));
      const Value p = Arg(args, kwargs, 0, "precision");
      const double scale = std::pow(10.0, p.kind() == Value::Kind::kInt ? p.as_int() : 0);
      out = Value(std::nearbyint(v.as_float() * scale) / scale);
      return Status::Ok();
    }
    if (name == "list") {
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      out = Value(std::move(items));
      return Status::Ok();
    }
    if (name == "items") {
      if (v.kind() != Value::Kind::kDict) return Error(offset, "items of " + KindName(v));
      return CallMethod(v, "items", {}, {}, offset, out);
    }
    if (name == "reverse") {
      if (v.is_string()) {
        const std::vector<size_t> b = Utf8Bounds(v.as_string());
        std::string r;
        for (size_t i = b.size() - 1; i > 0; --i)
          r.append(v.as_string(), b[i - 1], b[i] - b[i - 1]);
        out = Value(std::move(r));
        return Status::Ok();
      }
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      std::reverse(items.begin(), items.end());
      out = Value(std::move(items));
      return Status::Ok();
    }
    if (name == "sort" || name == "unique" || name == "min" || name == "max" || name == "sum") {
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      const Value attribute = Arg(args, kwargs, name == "sort" ? 2 : 99, "attribute");
      std::vector<Value> keys;
      for (const Value& item : items) {
        Value k = item;
        if (attribute.is_string()) {
          SEXTANT_RETURN_IF_ERROR(AttributeOf(item, attribute.as_string(), offset, k));
        }
        keys.push_back(std::move(k));
      }
      if (name == "sum") {
        Value total(int64_t{0});
        for (const Value& k : keys) {
          SEXTANT_RETURN_IF_ERROR(Binary("+", total, k, false, offset, total));
        }
        out = total;
        return Status::Ok();
      }
      if (name == "unique") {
        std::vector<Value> r;
        for (const Value& item : items) {
          if (std::none_of(r.begin(), r.end(), [&](const Value& x) { return Equal(x, item); })) {
            r.push_back(item);
          }
        }
        out = Value(std::move(r));
        return Status::Ok();
      }
      std::vector<size_t> order(items.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      Status cmp_error;
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
        Value lt;
        Status s = Binary("<", keys[x], keys[y], false, offset, lt);
        if (!s.ok()) {
          cmp_error = s;
          return false;
        }
        return lt.as_bool();
      });
      SEXTANT_RETURN_IF_ERROR(cmp_error);
      if (name == "min" || name == "max") {
        out = order.empty() ? Value() : items[name == "min" ? order.front() : order.back()];
        return Status::Ok();
      }
      if (Arg(args, kwargs, 0, "reverse").Truthy()) std::reverse(order.begin(), order.end());
      std::vector<Value> r;
      for (size_t i : order) r.push_back(items[i]);
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "selectattr" || name == "rejectattr" || name == "select" || name == "reject") {
      const bool by_attr = name == "selectattr" || name == "rejectattr";
      const bool keep_when = name == "selectattr" || name == "select";
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      size_t a = 0;
      std::string attribute;
      if (by_attr) {
        if (args.empty() || !args[0].is_string()) {
          return Error(offset, name + "() needs an attribute name");
        }
        attribute = args[0].as_string();
        a = 1;
      }
      std::string test = a < args.size() ? args[a].Str() : "";
      Args test_args(args.begin() + static_cast<std::ptrdiff_t>(std::min(args.size(), a + 1)),
                     args.end());
      std::vector<Value> r;
      for (const Value& item : items) {
        Value subject = item;
        if (by_attr) SEXTANT_RETURN_IF_ERROR(AttributeOf(item, attribute, offset, subject));
        bool pass;
        if (test.empty()) {
          pass = subject.Truthy();
        } else {
          SEXTANT_RETURN_IF_ERROR(ApplyTest(test, subject, test_args, offset, pass));
        }
        if (pass == keep_when) r.push_back(item);
      }
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "map") {
      std::vector<Value> items;
      SEXTANT_RETURN_IF_ERROR(Iterate(v, offset, items));
      std::vector<Value> r;
      const Value* attribute = Kwarg(kwargs, "attribute");
      for (const Value& item : items) {
        Value m;
        if (attribute != nullptr) {
          SEXTANT_RETURN_IF_ERROR(AttributeOf(item, attribute->Str(), offset, m));
          if (m.is_undefined()) {
            if (const Value* d = Kwarg(kwargs, "default")) m = *d;
          }
        } else if (!args.empty() && args[0].is_string()) {
          Args rest(args.begin() + 1, args.end());
          SEXTANT_RETURN_IF_ERROR(ApplyFilter(args[0].as_string(), item, rest, {}, offset, m));
        } else {
          return Error(offset, "map() needs a filter name or attribute=");
        }
        r.push_back(std::move(m));
      }
      out = Value(std::move(r));
      return Status::Ok();
    }
    if (name == "indent") {  // Jinja2's indent(s, width=4, first=False, blank=False)
      const Value w = Arg(args, kwargs, 0, "width");
      const bool first = Arg(args, kwargs, 1, "first").Truthy();
      const bool blank = Arg(args, kwargs, 2, "blank").Truthy();
      std::string pad;
      if (w.is_string()) {
        pad = w.as_string();
      } else {
        const int64_t n = w.kind() == Value::Kind::kInt ? w.as_int() : 4;
        pad.assign(static_cast<size_t>(std::clamp<int64_t>(n, 0, 1024)), ' ');
      }
      std::vector<std::string> lines;
      const std::string s = v.Str() + "\n";
      for (size_t start = 0; start < s.size();) {
        const size_t nl = s.find('\n', start);
        lines.push_back(s.substr(start, nl - start));
        start = nl + 1;
      }
      std::string r = first ? pad : "";
      for (size_t i = 0; i < lines.size(); ++i) {
        if (i > 0) {
          r += '\n';
          if (blank || !lines[i].empty()) r += pad;
        }
        r += lines[i];
      }
      out = Value(std::move(r));
      return Status::Ok();
    }
    return Error(offset, "unknown filter '" + name + "'");
  }

  Status ApplyTest(const std::string& name, const Value& v, const Args& args, size_t offset,
                   bool& out) {
    const Value a = args.empty() ? Value() : args[0];
    using K = Value::Kind;
    if (name == "defined") {
      out = !v.is_undefined();
    } else if (name == "undefined") {
      out = v.is_undefined();
    } else if (name == "none") {
      out = v.is_none();
    } else if (name == "string") {
      out = v.is_string();
    } else if (name == "number") {
      out = v.is_number();
    } else if (name == "integer") {
      out = v.kind() == K::kInt;
    } else if (name == "float") {
      out = v.kind() == K::kFloat;
    } else if (name == "boolean") {
      out = v.kind() == K::kBool;
    } else if (name == "true" || name == "false") {
      out = v.kind() == K::kBool && v.as_bool() == (name == "true");
    } else if (name == "mapping") {
      out = v.kind() == K::kDict;
    } else if (name == "iterable") {
      out = v.kind() == K::kList || v.kind() == K::kDict || v.is_string();
    } else if (name == "sequence") {
      out = v.kind() == K::kList || v.kind() == K::kDict || v.is_string();
    } else if (name == "callable") {
      out = v.kind() == K::kMacro;
    } else if (name == "odd" || name == "even" || name == "divisibleby") {
      if (v.kind() != K::kInt) return Error(offset, "'" + name + "' test of " + KindName(v));
      if (name == "divisibleby") {
        if (a.kind() != K::kInt || a.as_int() == 0) {
          return Error(offset, "divisibleby needs a non-zero integer");
        }
        out = v.as_int() % a.as_int() == 0;
      } else {
        out = (v.as_int() % 2 != 0) == (name == "odd");
      }
    } else if (name == "lower" || name == "upper") {
      const std::string s = v.Str();
      out = v.is_string() && std::none_of(s.begin(), s.end(), [&](char c) {
              return name == "lower" ? std::isupper(static_cast<unsigned char>(c))
                                     : std::islower(static_cast<unsigned char>(c));
            });
    } else if (name == "sameas") {
      out = v.kind() == a.kind() && Equal(v, a) &&
            (v.kind() != K::kList || &v.as_list() == &a.as_list());
    } else if (name == "eq" || name == "equalto" || name == "==" || name == "ne" || name == "!=") {
      out = Equal(v, a) == (name != "ne" && name != "!=");
    } else if (name == "lt" || name == "le" || name == "gt" || name == "ge" || name == "<" ||
               name == "<=" || name == ">" || name == ">=") {
      static const std::pair<const char*, const char*> kOps[] = {
          {"lt", "<"}, {"le", "<="}, {"gt", ">"}, {"ge", ">="}};
      std::string op = name;
      for (const auto& [word, sym] : kOps) {
        if (name == word) op = sym;
      }
      Value r;
      SEXTANT_RETURN_IF_ERROR(Binary(op, v, a, false, offset, r));
      out = r.as_bool();
    } else if (name == "in") {
      Value r;
      SEXTANT_RETURN_IF_ERROR(Binary("in", v, a, false, offset, r));
      out = r.as_bool();
    } else {
      return Error(offset, "unknown test '" + name + "'");
    }
    return Status::Ok();
  }

  std::string_view src_;
  RenderLimits limits_;
  Scope* root_ = nullptr;
  uint64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<Template> Template::Parse(std::string_view source) {
  auto program = std::make_shared<Program>();
  program->source = std::string(source);
  std::vector<Piece> pieces;
  SEXTANT_RETURN_IF_ERROR(Scanner(program->source).Scan(pieces));
  SEXTANT_RETURN_IF_ERROR(Parser(program->source, pieces).ParseAll(program->nodes));
  return Template(std::move(program));
}

Result<std::string> Template::Render(const Dict& variables, const RenderLimits& limits) const {
  Scope globals;
  for (const auto& [k, v] : variables.items) globals.vars[k] = v;
  std::string out;
  Interpreter interpreter(program_->source, limits);
  SEXTANT_RETURN_IF_ERROR(interpreter.Run(program_->nodes, globals, out));
  return out;
}

}  // namespace sextant::jinja
