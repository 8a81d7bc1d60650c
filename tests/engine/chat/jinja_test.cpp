// The Jinja subset, construct by construct, with the results Jinja2 (as Hugging Face configures
// it: trim_blocks, lstrip_blocks) gives for the same templates; and the errors and limits that
// keep a hostile template from crashing or exhausting the engine.
#include "engine/chat/jinja.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>

namespace sextant::jinja {
namespace {

Result<std::string> Render(std::string_view source, const Dict& vars = {},
                           const RenderLimits& limits = {}) {
  SEXTANT_ASSIGN_OR_RETURN(Template t, Template::Parse(source));
  return t.Render(vars, limits);
}

std::string Ok(std::string_view source, const Dict& vars = {}) {
  Result<std::string> r = Render(source, vars);
  EXPECT_TRUE(r.ok()) << source << "\n" << r.status().ToString();
  return r.ok() ? *r : "<error>";
}

Status Err(std::string_view source, const Dict& vars = {}) {
  Result<std::string> r = Render(source, vars);
  EXPECT_FALSE(r.ok()) << source << " rendered as '" << (r.ok() ? *r : "") << "'";
  return r.status();
}

Value Msg(std::string role, std::string content) {
  Dict d;
  d.Set("role", Value(std::move(role)));
  d.Set("content", Value(std::move(content)));
  return Value(std::move(d));
}

Dict Conversation() {
  Dict vars;
  vars.Set("messages", Value(std::vector<Value>{Msg("system", "Be brief."), Msg("user", "Hi"),
                                                Msg("assistant", "Hello"), Msg("user", "Bye")}));
  return vars;
}

TEST(JinjaTest, TextAndOutput) {
  Dict vars;
  vars.Set("name", Value("World"));
  EXPECT_EQ(Ok("Hello {{ name }}!", vars), "Hello World!");
  EXPECT_EQ(Ok("a { b } {not a tag} }}"), "a { b } {not a tag} }}");
  EXPECT_EQ(Ok("{# a comment #}x{# another\nline #}"), "x");
  EXPECT_EQ(Ok(""), "");
}

TEST(JinjaTest, WhitespaceControl) {
  Dict vars;
  vars.Set("x", Value("X"));
  EXPECT_EQ(Ok("a  \n {{- x -}} \n b", vars), "aXb");
  EXPECT_EQ(Ok("a  {%- if true -%}  b  {%- endif %}  c"), "ab  c");
  // trim_blocks: the newline after a block tag goes; after an output tag it stays.
  EXPECT_EQ(Ok("{% if true %}\nyes\n{% endif %}\nend"), "yes\nend");
  EXPECT_EQ(Ok("{{ x }}\n", vars), "X\n");
  // lstrip_blocks: spaces and tabs before a block tag at the start of a line go, not elsewhere.
  EXPECT_EQ(Ok("  \t{% if true %}x{% endif %}"), "x");
  EXPECT_EQ(Ok("a\n    {% if true %}x\n    {% endif %}b"), "a\nx\nb");
  EXPECT_EQ(Ok("a  {% if true %}x{% endif %}"), "a  x");
  EXPECT_EQ(Ok("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(Ok("  {{ x }}", vars), "  X");
  EXPECT_EQ(Ok("a\n  {# c #}\nb"), "a\nb");
}

TEST(JinjaTest, IfElifElse) {
  const char* t =
      "{% if n == 1 %}one{% elif n == 2 %}two{% elif n > 9 %}big{% else %}other{% endif %}";
  for (auto [n, want] : {std::pair{1, "one"}, {2, "two"}, {10, "big"}, {5, "other"}}) {
    Dict vars;
    vars.Set("n", Value(n));
    EXPECT_EQ(Ok(t, vars), want);
  }
  EXPECT_EQ(Ok("{% if '' %}a{% endif %}{% if [] %}b{% endif %}{% if [0] %}c{% endif %}"
               "{% if {} %}d{% endif %}{% if 0.0 %}e{% endif %}{% if none %}f{% endif %}"),
            "c");
}

TEST(JinjaTest, ForLoopVariables) {
  const std::string out = Ok(
      "{% for m in messages %}[{{ loop.index0 }}/{{ loop.index }}/{{ loop.length }}"
      "{% if loop.first %} first{% endif %}{% if loop.last %} last{% endif %} {{ loop.revindex0 }}"
      " {{ m.role }}]{% endfor %}",
      Conversation());
  EXPECT_EQ(out, "[0/1/4 first 3 system][1/2/4 2 user][2/3/4 1 assistant][3/4/4 last 0 user]");
  EXPECT_EQ(Ok("{% for m in messages %}{{ loop.previtem.role if loop.previtem is defined "
               "else '-' }}>{{ loop.nextitem.role if loop.nextitem else '-' }} {% endfor %}",
               Conversation()),
            "->user system>assistant user>user assistant>- ");
  // As in Jinja2, an attribute of the undefined item past the end is an error.
  EXPECT_FALSE(
      Render("{% for m in messages %}{{ loop.nextitem.role }}{% endfor %}", Conversation()).ok());
}

TEST(JinjaTest, ForFilterElseBreakContinueUnpacking) {
  // `for ... if` counts only the items that pass.
  EXPECT_EQ(Ok("{% for m in messages if m.role == 'user' %}{{ loop.index }}:{{ m.content }}"
               "{{ ',' if not loop.last }}{% endfor %}",
               Conversation()),
            "1:Hi,2:Bye");
  EXPECT_EQ(Ok("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(Ok("{% for x in missing %}x{% else %}none{% endfor %}"), "none");
  EXPECT_EQ(Ok("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
               "{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
            "0134");
  EXPECT_EQ(Ok("{% for k, v in {'a': 1, 'b': [2]}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=[2];");
  EXPECT_EQ(Ok("{% for k in {'z': 1, 'a': 2} %}{{ k }}{% endfor %}"), "za");
  EXPECT_EQ(Ok("{% for c in 'hé!' %}[{{ c }}]{% endfor %}"), "[h][é][!]");
}

TEST(JinjaTest, SetScopingAndNamespace) {
  // A `set` inside a loop stays in the loop; a namespace carries values out of it.
  EXPECT_EQ(Ok("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(
      Ok("{% set ns = namespace(x=1, seen=false) %}{% for i in [1, 2] %}"
         "{% set ns.x = ns.x + i %}{% set ns.seen = true %}{% endfor %}{{ ns.x }} {{ ns.seen }}"),
      "4 True");
  EXPECT_EQ(Ok("{% set a, b = 1, 'two' %}{{ b }}{{ a }}"), "two1");
  EXPECT_EQ(Ok("{% set block %}  inside {{ 1 + 1 }}{% endset %}[{{ block }}]"), "[  inside 2]");
  const Status s = Err("{% set x = 1 %}{% set x.y = 2 %}");
  EXPECT_NE(s.message().find("not a namespace"), std::string::npos) << s.message();
}

TEST(JinjaTest, Macros) {
  EXPECT_EQ(
      Ok("{% macro tag(name, open='<', close='>') %}{{ open }}{{ name }}{{ close }}"
         "{% endmacro %}{{ tag('a') }}{{ tag('b', close=']') }}{{ tag(name='c', open='[') }}"),
      "<a><b][c>");
  // Macros see the template's globals, not the caller's loop variables.
  Dict vars;
  vars.Set("g", Value("G"));
  EXPECT_EQ(Ok("{% macro m() %}{{ g }}{{ i }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}",
               vars),
            "G");
  const Status s = Err("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}");
  EXPECT_NE(s.message().find("takes 1 arguments"), std::string::npos) << s.message();
}

TEST(JinjaTest, Filters) {
  Dict vars = Conversation();
  vars.Set("s", Value("  Mixed Case \n"));
  EXPECT_EQ(Ok("[{{ s | trim }}][{{ s | upper | trim }}][{{ s|lower|trim }}]", vars),
            "[Mixed Case][MIXED CASE][mixed case]");
  EXPECT_EQ(Ok("{{ 'héllo' | length }} {{ messages | length }} {{ {'a': 1} | count }}", vars),
            "5 4 1");
  EXPECT_EQ(Ok("{{ missing | default('d') }} {{ '' | default('e') }} {{ '' | default('f', true) }}"
               " {{ 0 | d(7, boolean=true) }}"),
            "d  f 7");
  EXPECT_EQ(Ok("{{ messages | map(attribute='role') | join(', ') }}", vars),
            "system, user, assistant, user");
  EXPECT_EQ(Ok("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') "
               "| list }} {{ messages | rejectattr('role', 'eq', 'user') | list | length }}",
               vars),
            "['Hi', 'Bye'] 2");
  EXPECT_EQ(Ok("{{ (messages | first).role }} {{ (messages | last)['content'] }}", vars),
            "system Bye");
  EXPECT_EQ(Ok("{{ 'a-b-c' | replace('-', '+') }} {{ [3, 1, 2] | sort | reverse | list }}"
               " {{ '42' | int + 1 }} {{ 3 | string ~ '!' }} {{ 'x y' | title }}"
               " {{ 'hELLO' | capitalize }} {{ [1, 2, 1] | unique | list }} {{ -3 | abs }}"),
            "a+b+c [3, 2, 1] 43 3! X Y Hello [1, 2] 3");
  EXPECT_EQ(Ok("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}"),
            "a\n  b\n\n  c|  a\n  b");
}

TEST(JinjaTest, ToJsonAsPython) {
  // Python's json.dumps(ensure_ascii=False): ", " and ": " separators, non-ASCII kept.
  EXPECT_EQ(Ok("{{ {'name': 'f', 'args': [1, 2.5, true, none], 'q': 'a\"b\\\\\n', 'u': 'é'} "
               "| tojson }}"),
            "{\"name\": \"f\", \"args\": [1, 2.5, true, null], \"q\": \"a\\\"b\\\\\\n\", "
            "\"u\": \"é\"}");
  EXPECT_EQ(Ok("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}"),
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}");
  EXPECT_EQ(Ok("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(JinjaTest, ConcatenationAndArithmetic) {
  EXPECT_EQ(Ok("{{ 'a' ~ 1 ~ none ~ missing }}"), "a1None");
  EXPECT_EQ(
      Ok("{{ 'a' + 'b' }} {{ [1] + [2] }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }}"
         " {{ -7 // 2 }} {{ -7 % 3 }} {{ 1 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 'ab' * 2 }}"),
      "ab [1, 2] 7 9 3 -4 2 0.5 1024 2.5 abab");
  // `~` binds looser than `+`; a filter binds tighter than both.
  EXPECT_EQ(Ok("{{ 1 + 2 ~ 3 }} {{ 'x' + ' y ' | trim + 'z' }}"), "33 xyz");
  const Status s = Err("{{ 'a' + 1 }}");
  EXPECT_NE(s.message().find("cannot apply '+' to a string and an int"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("offset 7"), std::string::npos) << s.message();
}

TEST(JinjaTest, ComparisonsMembershipAndTests) {
  Dict vars = Conversation();
  EXPECT_EQ(Ok("{{ 1 < 2 }} {{ 'a' < 'b' }} {{ 2 >= 2.0 }} {{ 1 == 1.0 }} {{ 'a' != 'a' }}"
               " {{ 'ell' in 'hello' }} {{ 3 not in [1, 2] }} {{ 'role' in messages[0] }}"
               " {{ 'x' in missing }}",
               vars),
            "True True True True False True True True False");
  EXPECT_EQ(Ok("{{ missing is defined }} {{ missing is undefined }} {{ none is none }}"
               " {{ 'a' is string }} {{ 1 is string }} {{ messages is not string }}"
               " {{ 1 is number }} {{ messages[0] is mapping }} {{ 3 is odd }}"
               " {{ 6 is divisibleby(3) }} {{ true is sameas true }} {{ false is false }}"
               " {{ not missing is defined }}",
               vars),
            "False True True True False True True True True True True True True");
}

TEST(JinjaTest, SubscriptsAttributesAndSlices) {
  Dict vars = Conversation();
  EXPECT_EQ(Ok("{{ messages[0]['role'] }} {{ messages[-1].content }} {{ messages[0].missing }}"
               "| {{ messages[1:] | length }} {{ (messages[::-1] | first).content }}"
               " {{ messages[1:3] | map(attribute='content') | join }} {{ 'héllo'[1:3] }}"
               " {{ 'abc'[-1] }} {{ 'abc'[::-1] }}",
               vars),
            "system Bye | 3 Bye HiHello él c cba");
  const Status s = Err("{{ missing.role }}");
  EXPECT_NE(s.message().find("undefined"), std::string::npos) << s.message();
  EXPECT_FALSE(Render("{{ messages[9] }}", vars).ok());
}

TEST(JinjaTest, Methods) {
  EXPECT_EQ(
      Ok("[{{ '  a b  '.strip() }}][{{ 'xxaxx'.lstrip('x') }}][{{ '\\n\\na\\n'.rstrip('\\n') }}]"
         "[{{ 'a,b,,c'.split(',') }}][{{ ' a  b '.split() }}][{{ 'a b c'.split(' ', 1) }}]"
         "[{{ 'hello'.startswith('he') }}{{ 'hello'.endswith(('x', 'lo')) }}]"
         "[{{ 'Hi'.upper() }}{{ 'Hi'.lower() }}][{{ '-'.join(['a', 'b']) }}]"
         "[{{ 'abcb'.replace('b', 'B') }}{{ 'abcb'.find('c') }}{{ 'abcb'.count('b') }}]"),
      "[a b][axx][\n\na][['a', 'b', '', 'c']][['a', 'b']][['a', 'b c']][TrueTrue][HIhi][a-b]"
      "[aBcB22]");
  EXPECT_EQ(Ok("{% set d = {'a': 1} %}{{ d.get('a') }} {{ d.get('b') }} {{ d.get('b', 2) }}"
               " {{ d.keys() | list }} {{ d.values() | list }}"),
            "1 None 2 ['a'] [1]");
  // The split chain Qwen 3's template uses to take the reasoning out of an answer.
  Dict vars;
  vars.Set("c", Value("<think>\nwhy\n</think>\n\nanswer"));
  EXPECT_EQ(Ok("[{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}]"
               "[{{ c.split('</think>')[-1].lstrip('\\n') }}]",
               vars),
            "[why][answer]");
  EXPECT_NE(Err("{{ 'a'.nosuch() }}").message().find("unknown string method 'nosuch'"),
            std::string::npos);
}

TEST(JinjaTest, ConditionalExpressions) {
  EXPECT_EQ(Ok("{{ 'y' if 1 else 'n' }}{{ 'y' if 0 else 'n' }}[{{ 'y' if 0 }}]"
               "{{ 'a' if false else 'b' if true else 'c' }}"),
            "yn[]b");
  EXPECT_EQ(Ok("{{ true and 'x' }} {{ 0 or 'y' }} {{ not 0 }} {{ none or [] }}"), "x y True []");
}

TEST(JinjaTest, ValuesPrintAsPython) {
  EXPECT_EQ(
      Ok("{{ true }} {{ false }} {{ none }} {{ 1.0 }} {{ 0.1 }} {{ 1e20 }} {{ [1, 'a', none] }}"
         " {{ {'k': 'v'} }} {{ \"it's\" }} {{ 'a' 'b' }}"),
      "True False None 1.0 0.1 1e+20 [1, 'a', None] {'k': 'v'} it's ab");
}

TEST(JinjaTest, RaiseException) {
  const Status s =
      Err("{% if messages | length == 0 %}{{ raise_exception('No messages!') }}"
          "{% endif %}",
          [] {
            Dict d;
            d.Set("messages", Value(std::vector<Value>{}));
            return d;
          }());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("No messages!"), std::string::npos) << s.message();
}

TEST(JinjaTest, SyntaxErrorsNameTheOffset) {
  struct Case {
    const char* source;
    const char* message;
  };
  const Case cases[] = {
      {"ab{% include 'x' %}", "unsupported statement 'include' at offset 5 (line 1, column 6)"},
      {"{% if x %}a", "missing '{% endif %}' for the block opened at offset 0"},
      {"x\n{{ a b }}", "unexpected 'b' at offset 7 (line 2, column 6)"},
      {"{{ a ", "unterminated '{{' tag at offset 0"},
      {"{{ 'abc }}", "unterminated string literal at offset 3"},
      {"{{ }}", "expected an expression"},
      {"{% endfor %}", "unsupported statement 'endfor'"},
      {"{% for x in %}{% endfor %}", "expected an expression"},
      {"{% break %}", "'break' outside a loop"},
      {"{{ a ? b }}", "unexpected character '?'"},
      {"{# open", "unterminated comment at offset 0"},
      {"{% for x in y recursive %}{% endfor %}", "recursive loops are not supported"},
      {"{{ f(a=1, 2) }}", "a positional argument after a keyword argument"},
  };
  for (const Case& c : cases) {
    Result<Template> t = Template::Parse(c.source);
    ASSERT_FALSE(t.ok()) << c.source;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << c.source;
    EXPECT_NE(t.status().message().find(c.message), std::string::npos)
        << c.source << ": " << t.status().message();
  }
}

TEST(JinjaTest, RuntimeErrorsNameTheOffset) {
  EXPECT_NE(Err("{{ 1 | nosuch }}").message().find("unknown filter 'nosuch' at offset 7"),
            std::string::npos);
  EXPECT_NE(Err("{{ 1 is nosuch }}").message().find("unknown test 'nosuch'"), std::string::npos);
  EXPECT_NE(Err("{{ nosuch(1) }}").message().find("unknown function 'nosuch'"), std::string::npos);
  EXPECT_NE(Err("{{ 1 // 0 }}").message().find("division by zero"), std::string::npos);
  EXPECT_NE(Err("{% for x in 3 %}{% endfor %}").message().find("cannot iterate over an int"),
            std::string::npos);
}

TEST(JinjaTest, HostileTemplatesHitLimits) {
  RenderLimits small;
  small.max_steps = 100000;
  small.max_output_bytes = 1 << 16;
  // Work without end, output without end, recursion without end, nesting without end.
  Result<std::string> r =
      Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", {},
             small);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  r = Render("{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}", {}, small);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  r = Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", {}, small);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  r = Render("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}");
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
  r = Render(std::string(5000, '{') + "% if true %}");
  EXPECT_FALSE(r.ok());
  std::string nested;
  for (int i = 0; i < 1000; ++i) nested += "{% if true %}";
  r = Render(nested);
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().ToString();
}

TEST(JinjaTest, ATemplateRendersConcurrently) {
  Result<Template> t = Template::Parse("{% for m in messages %}{{ m.content }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  const Dict vars = Conversation();
  std::vector<std::thread> threads;
  std::atomic<int> same{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 200; ++k) {
        Result<std::string> r = t->Render(vars);
        if (r.ok() && *r == "Be brief.HiHelloBye") ++same;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(same.load(), 800);
}

}  // namespace
}  // namespace sextant::jinja
