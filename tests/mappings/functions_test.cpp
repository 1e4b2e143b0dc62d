// One test (or more) per function of the mapping language.
#include "core/pseudonym.h"
#include "test_util.h"

namespace relais::mappings::testing {
namespace {

const json kBody = json::parse(R"({
  "rdv": {"id": 91877, "date": "2019-05-17", "heure": "10:00", "duree_minutes": 30,
          "cms": {"nom": "Barentin"}, "vide": "", "zero": 0,
          "tags": ["a", "b"], "items": [{"n": 1, "k": "x"}, {"n": 2, "k": "y"}, {"k": "z"}]},
  "tel": "06.00.00.00.00", "fixe": "02 35 00 00 00"
})");

TEST(Paths, FieldsIndexesAndStars) {
  EXPECT_EQ(ev("$.rdv.id", kBody), 91877);
  EXPECT_EQ(ev("$.rdv.tags[0]", kBody), "a");
  EXPECT_EQ(ev("$.rdv.tags[-1]", kBody), "b");
  EXPECT_EQ(ev("$.rdv.tags[5]", kBody), nullptr);
  EXPECT_EQ(ev("$.rdv.items[*].n", kBody), json({1, 2}));
  EXPECT_EQ(ev("$['rdv']['id']", kBody), 91877);
  EXPECT_EQ(ev("$.absent.deeper", kBody), nullptr);
  EXPECT_EQ(ev("$meta.type", kBody, {{"type", "rdv.planned"}}), "rdv.planned");
}

TEST(Literals, AllKinds) {
  EXPECT_EQ(ev("'texte'"), "texte");
  EXPECT_EQ(ev("\"texte\""), "texte");
  EXPECT_EQ(ev("'l''heure'"), "l'heure");
  EXPECT_EQ(ev("12"), 12);
  EXPECT_EQ(ev("1.5"), 1.5);
  EXPECT_EQ(ev("-3"), -3);
  EXPECT_EQ(ev("true"), true);
  EXPECT_EQ(ev("null"), nullptr);
  EXPECT_EQ(ev("[1, 'a']"), json({1, "a"}));
}

TEST(Operators, ArithmeticComparisonLogic) {
  EXPECT_EQ(ev("$.rdv.duree_minutes * 2 + 1", kBody), 61);
  EXPECT_EQ(ev("7 / 2"), 3.5);
  EXPECT_EQ(ev("7 % 4"), 3);
  EXPECT_EQ(ev("'a' + 1"), "a1");
  EXPECT_EQ(ev("$.rdv.id == 91877 and not ($.rdv.vide != '')", kBody), true);
  EXPECT_EQ(ev("1 < 2 or false"), true);
  EXPECT_EQ(ev("'2019-05-17' < '2019-05-18'"), true);
  EXPECT_NE(run_error("1 / 0").find("division by zero"), std::string::npos);
  EXPECT_NE(run_error("'a' - 1").find("arithmetic needs numbers"), std::string::npos);
}

TEST(Templates, Interpolation) {
  EXPECT_EQ(ev("'RDV n° {$.rdv.id} le {$.rdv.date} à {$.rdv.heure}'", kBody),
            "RDV n° 91877 le 2019-05-17 à 10:00");
  EXPECT_EQ(ev("'{{littéral}}'"), "{littéral}");
  EXPECT_EQ(ev("'[{$.absent}]'"), "[]");
}

TEST(Logic, IfCoalesceDefaultCaseOneOf) {
  EXPECT_EQ(ev("if($.rdv.zero, 'oui', 'non')", kBody), "non");
  EXPECT_EQ(ev("if(true, 'oui')"), "oui");
  EXPECT_EQ(ev("if(false, 'oui')"), nullptr);
  EXPECT_EQ(ev("coalesce($.absent, $.rdv.vide, 'x')", kBody), "x");
  EXPECT_EQ(ev("default($.rdv.vide, 'd')", kBody), "d");
  EXPECT_EQ(ev("default($.rdv.zero, 'd')", kBody), 0);
  EXPECT_EQ(ev("case('VAD', 'CMS', 1, 'VAD', 2, 3)"), 2);
  EXPECT_EQ(ev("case('X', 'CMS', 1, 'VAD', 2, 3)"), 3);
  EXPECT_EQ(ev("case('X', 'CMS', 1)"), nullptr);
  EXPECT_EQ(ev("one_of('b', 'a', 'b')"), true);
  EXPECT_EQ(ev("is_empty($.rdv.vide)", kBody), true);
  EXPECT_EQ(ev("present($.rdv.id)", kBody), true);
}

TEST(Logic, Required) {
  EXPECT_EQ(ev("required($.rdv.id, 'id absent')", kBody), 91877);
  EXPECT_EQ(run_error("required($.rdv.vide, 'valeur absente')", kBody),
            "mapping 't', rule 'v': valeur absente (value: $.rdv.vide)");
  EXPECT_EQ(run_error("required($.x)"),
            "mapping 't', rule 'v': a required value is missing (value: $.x)");
}

TEST(Lists, LengthFirstLastFindContainsJoinSplit) {
  EXPECT_EQ(ev("length($.rdv.tags)", kBody), 2);
  EXPECT_EQ(ev("length('été')"), 3);
  EXPECT_EQ(ev("first($.rdv.tags)", kBody), "a");
  EXPECT_EQ(ev("last($.rdv.tags)", kBody), "b");
  EXPECT_EQ(ev("find($.rdv.items, 'k', 'y').n", kBody), 2);
  EXPECT_EQ(ev("find($.rdv.items, 'k', 'nope')", kBody), nullptr);
  EXPECT_EQ(ev("contains($.rdv.tags, 'b')", kBody), true);
  EXPECT_EQ(ev("contains('Barentin', 'rent')"), true);
  EXPECT_EQ(ev("starts_with('Barentin', 'Bar')"), true);
  EXPECT_EQ(ev("ends_with('Barentin', 'tin')"), true);
  EXPECT_EQ(ev("join($.rdv.tags, ', ')", kBody), "a, b");
  EXPECT_EQ(ev("join(['a', null, '', 'b'], '-')"), "a-b");
  EXPECT_EQ(ev("split('a;b;;c', ';')"), json({"a", "b", "", "c"}));
  EXPECT_EQ(ev("string(12)"), "12");
}

TEST(Text, CaseTrimAccents) {
  EXPECT_EQ(ev("upper('élodie œuvre')"), "ÉLODIE ŒUVRE");
  EXPECT_EQ(ev("lower('ÉLODIE ÇA')"), "élodie ça");
  EXPECT_EQ(ev("capitalize('jEAN-pierre d''arc')"), "Jean-Pierre D'Arc");
  EXPECT_EQ(ev("capitalise('élise')"), "Élise");
  EXPECT_EQ(ev("trim('  a b \t')"), "a b");
  EXPECT_EQ(ev("strip_accents('Éléonore Œuvre à Noël')"), "Eleonore OEuvre a Noel");
  EXPECT_EQ(ev("gsm7('Département : empêché « oui » – ok')"),
            "Département : empeché \" oui \" - ok");
  EXPECT_EQ(ev("upper(null)"), nullptr);
}

TEST(Text, TruncateReplaceConcatPadSubstring) {
  EXPECT_EQ(ev("truncate('Barentin', 4)"), "Bare");
  EXPECT_EQ(ev("truncate('Barentin', 6, '…')"), "Baren…");
  EXPECT_EQ(ev("truncate('Été', 5)"), "Été");
  EXPECT_EQ(ev("replace('02.35.00', '.', ' ')"), "02 35 00");
  EXPECT_EQ(ev("concat('a', 1, null, true)"), "a1true");
  EXPECT_EQ(ev("pad_left(7, 3, '0')"), "007");
  EXPECT_EQ(ev("pad_right('ab', 4)"), "ab  ");
  EXPECT_EQ(ev("substring('Élodie', 0, 2)"), "Él");
  EXPECT_EQ(ev("substring('Élodie', -3)"), "die");
}

TEST(Dates, DatetimeAndFormat) {
  EXPECT_EQ(ev("datetime($.rdv.date, $.rdv.heure)", kBody), "2019-05-17T10:00:00+02:00");
  EXPECT_EQ(ev("datetime('2019-12-02', '9h05')"), "2019-12-02T09:05:00+01:00");
  EXPECT_EQ(ev("datetime('2019-05-17', '10:00', 'UTC')"), "2019-05-17T10:00:00+00:00");
  EXPECT_EQ(ev("format_date('2019-05-17T10:00:00+02:00', '%A %-d %B %Y à %Hh%M')"),
            "vendredi 17 mai 2019 à 10h00");
  EXPECT_EQ(ev("format_date('2019-08-01', '%a %d %b %y')"), "jeu. 01 août 19");
  EXPECT_EQ(ev("format_date('2019-05-17T08:00:00Z', '%H:%M %Z %z %:z')"),
            "10:00 CEST +0200 +02:00");
  EXPECT_EQ(ev("format_date('2019-05-17T08:00:00Z', '%H:%M', 'America/New_York')"), "04:00");
  EXPECT_EQ(ev("format_date('2019-12-31', '%j')"), "365");
  EXPECT_EQ(ev("datetime(null, '10:00')"), nullptr);
  EXPECT_NE(run_error("datetime('2019-05-17', 'midi')").find("'midi' is not a time of day"),
            std::string::npos);
  EXPECT_NE(run_error("format_date('17/05/2019', '%Y')").find("'17/05/2019' is not a date"),
            std::string::npos);
}

TEST(Dates, ParseDate) {
  EXPECT_EQ(ev("parse_date('17/05/2019', '%d/%m/%Y')"), "2019-05-17");
  EXPECT_EQ(ev("parse_date('17/05/2019 10:30', '%d/%m/%Y %H:%M')"), "2019-05-17T10:30:00+02:00");
  EXPECT_EQ(ev("parse_date('17 mai 2019', '%d %B %Y')"), "2019-05-17");
  EXPECT_EQ(ev("parse_date('3 fevrier 2020', '%e %B %Y')"), "2020-02-03");
  EXPECT_EQ(ev("parse_date('2019-05-17 10:30 +0000', '%Y-%m-%d %H:%M %z')"),
            "2019-05-17T12:30:00+02:00");
  EXPECT_EQ(run_error("parse_date('32/05/2019', '%d/%m/%Y')"),
            "mapping 't', rule 'v': '32/05/2019' does not match the date pattern '%d/%m/%Y' "
            "(value: '32/05/2019')");
}

TEST(Dates, ArithmeticAndZones) {
  EXPECT_EQ(ev("add_minutes('2019-05-17T10:00:00+02:00', 45)"), "2019-05-17T10:45:00+02:00");
  EXPECT_EQ(ev("add_hours('2019-05-17T10:00:00+02:00', -3)"), "2019-05-17T07:00:00+02:00");
  EXPECT_EQ(ev("add_days('2019-05-17', 20)"), "2019-06-06");
  EXPECT_EQ(ev("add_months('2019-01-31T10:00:00+01:00', 1)"), "2019-02-28T10:00:00+01:00");
  EXPECT_EQ(ev("add_duration('2019-05-17T10:00:00+02:00', 'P1DT2H30M')"),
            "2019-05-18T12:30:00+02:00");
  EXPECT_EQ(ev("add_duration('2019-05-17T10:00:00+02:00', '-PT15M')"), "2019-05-17T09:45:00+02:00");
  EXPECT_EQ(ev("to_timezone('2019-05-17T10:00:00+02:00', 'America/New_York')"),
            "2019-05-17T04:00:00-04:00");
  EXPECT_EQ(ev("to_timezone('2019-05-17T10:00:00', 'UTC')"), "2019-05-17T08:00:00+00:00");
  EXPECT_EQ(ev("to_utc('2019-05-17T10:00:00+02:00')"), "2019-05-17T08:00:00Z");
  EXPECT_EQ(ev("local_datetime('2019-05-17T08:00:00Z')"), "2019-05-17T10:00:00");
  EXPECT_EQ(ev("minutes_between('2019-05-17T10:00:00+02:00', '2019-05-17T09:00:00Z')"), 60);
}

// Europe/Paris DST: 2019-03-31 02:00 -> 03:00 (spring forward), 2019-10-27 03:00 -> 02:00.
TEST(Dates, DaylightSavingTimeParis) {
  EXPECT_EQ(ev("datetime('2019-03-31', '01:59')"), "2019-03-31T01:59:00+01:00");
  EXPECT_EQ(ev("datetime('2019-03-31', '03:00')"), "2019-03-31T03:00:00+02:00");
  // 02:30 does not exist: shifted forward by the gap
  EXPECT_EQ(ev("datetime('2019-03-31', '02:30')"), "2019-03-31T03:30:00+02:00");
  // 02:30 exists twice on 2019-10-27: the first one (summer time) is chosen
  EXPECT_EQ(ev("datetime('2019-10-27', '02:30')"), "2019-10-27T02:30:00+02:00");
  EXPECT_EQ(ev("datetime('2019-10-27', '03:30')"), "2019-10-27T03:30:00+01:00");
  // an hour added across the change is an hour of real time
  EXPECT_EQ(ev("add_minutes('2019-03-31T01:30:00+01:00', 60)"), "2019-03-31T03:30:00+02:00");
  EXPECT_EQ(ev("add_minutes('2019-10-27T02:30:00+02:00', 60)"), "2019-10-27T02:30:00+01:00");
  // a day added keeps the wall-clock time
  EXPECT_EQ(ev("add_days('2019-03-30T10:00:00+01:00', 1)"), "2019-03-31T10:00:00+02:00");
  EXPECT_EQ(ev("add_days('2019-10-28T09:00:00+01:00', -1)"), "2019-10-27T09:00:00+01:00");
  EXPECT_EQ(ev("add_days('2019-10-26T09:00:00+02:00', 1)"), "2019-10-27T09:00:00+01:00");
  EXPECT_EQ(ev("minutes_between('2019-03-31T00:00:00+01:00', '2019-04-01T00:00:00+02:00')"), 1380);
  EXPECT_EQ(ev("format_date('2019-10-27T01:30:00Z', '%H:%M %Z')"), "02:30 CET");
  EXPECT_EQ(ev("format_date('2019-10-27T00:30:00Z', '%H:%M %Z')"), "02:30 CEST");
}

TEST(Numbers, Conversions) {
  EXPECT_EQ(ev("number('12,5')"), 12.5);
  EXPECT_EQ(ev("number(' 42 ')"), 42);
  EXPECT_EQ(ev("number('')"), nullptr);
  EXPECT_EQ(ev("integer('12.9')"), 12);
  EXPECT_EQ(ev("round(2.345, 2)"), 2.35);
  EXPECT_EQ(ev("round(2.5)"), 3);
  EXPECT_EQ(ev("floor(2.7)"), 2);
  EXPECT_EQ(ev("ceil(2.1)"), 3);
  EXPECT_EQ(ev("abs(-4)"), 4);
  EXPECT_EQ(ev("min(3, 1, 2)"), 1);
  EXPECT_EQ(ev("max([3, 7], 2)"), 7);
  EXPECT_EQ(ev("format_number(1234567.891, 2)"), "1234567,89");
  EXPECT_EQ(ev("format_number(1234567.891, 2, ',', ' ')"), "1 234 567,89");
  EXPECT_EQ(ev("format_number(-1234, 0, '.', ',')"), "-1,234");
  EXPECT_EQ(run_error("number('douze')"),
            "mapping 't', rule 'v': 'douze' is not a number (value: 'douze')");
}

TEST(Phones, E164MobileNational) {
  EXPECT_EQ(ev("phone_e164($.tel)", kBody), "+33600000000");
  EXPECT_EQ(ev("phone_e164('0692 12 34 56', 'RE')"), "+262692123456");
  EXPECT_EQ(ev("phone_national($.fixe)", kBody), "02 35 00 00 00");
  EXPECT_EQ(ev("phone_is_mobile($.tel)", kBody), true);
  EXPECT_EQ(ev("phone_is_mobile($.fixe)", kBody), false);
  EXPECT_EQ(ev("phone_is_mobile('12')"), false);
  EXPECT_EQ(ev("phone_is_mobile(null)"), false);
  EXPECT_EQ(ev("phone_is_valid($.fixe)", kBody), true);
  EXPECT_EQ(ev("phone_e164(null)"), nullptr);
  EXPECT_EQ(run_error("phone_e164($.rdv.id)", kBody),
            "mapping 't', rule 'v': invalid phone number '91877' for region FR (value: $.rdv.id)");
}

TEST(Tables, LookupAndHasKey) {
  EXPECT_EQ(ev("lookup('cms', $.rdv.cms.nom, 'telephone')", kBody), "02.35.00.00.00");
  EXPECT_EQ(ev("lookup('cms', 'Inconnu', 'adresse')"), "Département");
  EXPECT_EQ(ev("lookup('cms', 'Barentin').adresse"), "Place de la Libération, 76360 Barentin");
  EXPECT_EQ(ev("lookup('thematique', 'Budget')"), "BUD");
  EXPECT_EQ(ev("lookup('thematique', 'Autre')"), "DIV");
  EXPECT_EQ(ev("has_key('thematique', 'Autre')"), false);
  EXPECT_EQ(ev("has_key('cms', 'Barentin')"), true);
  EXPECT_EQ(run_error("lookup('strict', $.rdv.cms.nom)", kBody),
            "mapping 't', rule 'v': no entry 'Barentin' in table 'strict' and the table has no "
            "default (value: $.rdv.cms.nom)");
}

TEST(Ids, Sha256AndUuidV5) {
  EXPECT_EQ(ev("sha256('abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  // reference values from Python's uuid.uuid5
  EXPECT_EQ(ev("uuid_v5('dns', 'example.org')"), "aad03681-8b63-5304-89e0-8ca8f49461b5");
  EXPECT_EQ(ev("uuid_v5('f3a6c1d0-76cd-4c5e-9b1a-2c0d7e6f7601', 'cms76:rdv:91877')"),
            "69a1a73c-2c2b-509d-afd0-7d698c541de8");
}

// pseudonym(): HMAC-SHA256 under the process's pseudonym key (core/pseudonym.h); plain SHA-256
// without one. The keyed value is `printf abc | openssl dgst -sha256 -hmac KEY`.
TEST(Ids, PseudonymIsKeyed) {
  struct KeyGuard {
    ~KeyGuard() { relais::set_pseudonym_key(""); }
  } guard;
  relais::set_pseudonym_key("");
  EXPECT_EQ(ev("pseudonym('abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  relais::set_pseudonym_key("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(ev("pseudonym('abc')"),
            "a60c859a6827c5ea576a48d8d368672fbfe4667c6a927428284a0cb3859cc1d6");
  EXPECT_EQ(ev("pseudonym(null)"), nullptr);
}

}  // namespace
}  // namespace relais::mappings::testing
