/* PII redaction: positives of every kind with their counts (card and IBAN
 * numbers are published test numbers that pass Luhn / mod-97), and tricky
 * negatives that must survive untouched: version numbers, dates, times,
 * Luhn-failing digit runs, user@host, file names with '@', C++ scopes, MAC
 * addresses, order numbers. */
#include <stdlib.h>

#include "qai/ingest.h"
#include "test.h"

static char *redact(const char *in, qai_pii_counts *c) {
    char *out = NULL;
    size_t n = 0;
    if (qai_pii_redact(in, strlen(in), &out, &n, c) != QAI_OK) return NULL;
    if (strlen(out) != n) {
        qai_free(out);
        return NULL;
    }
    return out;
}

static void expect(const char *in, const char *want) {
    qai_pii_counts c;
    char *got = redact(in, &c);
    CHECK_MSG(got && !strcmp(got, want), "redact('%s') = '%s', want '%s'", in, got ? got : "(error)", want);
    qai_free(got);
}

static void unchanged(const char *in) { expect(in, in); }

static void test_positives(void) {
    expect("mail john.doe+tag@example.co.uk now", "mail [EMAIL] now");
    expect("<a.b@c-d.example.org>", "<[EMAIL]>");
    expect("call +1 (555) 123-4567 or 555-123-4567.", "call [PHONE] or [PHONE].");
    expect("tel: +44 20 7946 0958", "tel: [PHONE]");
    expect("+49 (0) 30 1234567", "[PHONE]");
    expect("office 555.123.4567", "office [PHONE]");
    expect("host 192.168.1.20 up", "host [IP] up");
    expect("[10.0.0.1]:8080", "[[IP]]:8080");
    expect("v6 2001:db8:85a3::8a2e:370:7334 and 2001:0db8:0000:0000:0000:ff00:0042:8329",
           "v6 [IP] and [IP]");
    expect("mapped ::ffff:192.0.2.128 ok", "mapped [IP] ok");
    expect("visa 4111 1111 1111 1111 and 4111-1111-1111-1111", "visa [CARD] and [CARD]");
    expect("mc 5500000000000004; amex 378282246310005 or 3782 822463 10005", "mc [CARD]; amex [CARD] or [CARD]");
    expect("IBAN GB82 WEST 1234 5698 7654 32 paid", "IBAN [IBAN] paid");
    expect("DE89370400440532013000", "[IBAN]");
    expect("key AKIAIOSFODNN7EXAMPLE here", "key [SECRET] here");
    expect("OPENAI_API_KEY=sk-proj-AbCdEf012345GhIjKl6789MnOpQr", "OPENAI_API_KEY=[SECRET]");
    expect("token ghp_0123456789abcdefghijklmnopqrstuvwxyzAB.", "token [SECRET].");
    expect("slack xoxb-1234567890-abcdefghij", "slack [SECRET]");
    expect("a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK\n-----END RSA PRIVATE KEY-----\nb",
           "a\n[SECRET]\nb");
    expect("x -----BEGIN OPENSSH PRIVATE KEY-----\nabc", "x [SECRET]");
    qai_pii_counts c;
    char *o = redact("a@b.example x@y.org 10.1.2.3 fe80::1:2:3 4111111111111111 GB82WEST12345698765432 "
                     "+1 555 123 4567 AKIAIOSFODNN7EXAMPLE",
                     &c);
    CHECK(o != NULL);
    CHECK_EQ_INT(c.emails, 2);
    CHECK_EQ_INT(c.ipv4, 1);
    CHECK_EQ_INT(c.ipv6, 1);
    CHECK_EQ_INT(c.cards, 1);
    CHECK_EQ_INT(c.ibans, 1);
    CHECK_EQ_INT(c.phones, 1);
    CHECK_EQ_INT(c.secrets, 1);
    qai_free(o);
}

static void test_negatives(void) {
    unchanged("qai version 1.2.3.4 and v10.0.0.1 and release 2.4.6.8");
    unchanged("semver 1.2.3, dotted 1.2.3.4.5, octets 256.1.1.1, zeros 01.02.03.04");
    unchanged("on 2024-01-15 at 12:30:45, or 15.01.2024 or 01/15/2024");
    unchanged("order 1234567890123456 and 4111 1111 1111 1112 fail Luhn");
    /* Luhn-passing numbers without a card network's prefix and length: ids, not cards */
    unchanged("deployedModelId: '2000000000000000008' and 4111111111111111111111");
    unchanged("see RFC 2616 section 8.1.2.2 (since dpkg 1.17.14.1)");
    unchanged("0000000: 2e54 4820 5858 4420 3120 2241  .TH XXD 1");
    unchanged("cpu0 1393280 32966 572056 13343292 0 4111 1111 1111 1111 9 0");
    unchanged("4111 11111 11111 111 is grouped oddly");
    unchanged("key type sk-ecdsa-sha2-nistp256-cert-v01 or sk-ssh-ed25519");
    unchanged("ssh user@host and git@server: and root@localhost");
    unchanged("icons icon@2x.png and logo@3x.webp");
    unchanged("@decorator def f(): my @list = @ARGV;");
    unchanged("std::vector<int> and a::b::c and Foo::Bar::baz");
    unchanged("mac 00:1a:2b:3c:4d:5e");
    unchanged("GB82 WEST 1234 5698 7654 33 bad check");
    unchanged("sk-short and ghp_short and AKIA123");
    unchanged("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----");
    unchanged("id 12345678, ISBN 978-3-16-148410-0, price 1.234.567");
    unchanged("range 555-1234 and ext. 123-4567");
    unchanged("see RFC 2616 section 14.9.3 and 127 items");
    unchanged("");
    unchanged("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac 100%");
}

static void test_bytes(void) {
    /* NUL bytes inside are kept, output is the exact length */
    const char in[] = "a\0b 10.0.0.1";
    char *out;
    size_t n;
    CHECK_OK(qai_pii_redact(in, sizeof in - 1, &out, &n, NULL));
    CHECK(n == 8 && !memcmp(out, "a\0b [IP]", 9));
    qai_free(out);
    /* long random input does not crash */
    qai_rng r;
    qai_rng_seed(&r, 9);
    static char buf[1 << 16];
    const char alphabet[] = "0123456789 .-:@+()abcdefAKIAsk_ghp\n";
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = alphabet[qai_rng_u64(&r) % (sizeof alphabet - 1)];
    CHECK_OK(qai_pii_redact(buf, sizeof buf, &out, &n, NULL));
    CHECK(n > 0);
    qai_free(out);
}

int main(void) {
    test_positives();
    test_negatives();
    test_bytes();
    return test_summary();
}
