/* SHA-3 / SHAKE (src/registry/sha3.c) against FIPS 202 known answers.
 *
 * Sources of the expected values:
 *  - SHA3-256(""), SHA3-256("abc"), SHA3-512("abc"), SHAKE128("") and
 *    SHAKE256("") are the FIPS 202 example values published by NIST CSRC
 *    ("Cryptographic Standards and Guidelines: Examples with Intermediate
 *    Values", files SHA3-256_Msg0.pdf, SHA3-256_Msg24 (abc), SHAKE128_Msg0.pdf,
 *    SHAKE256_Msg0.pdf); the 0xA3 x 200 message is NIST's "Msg1600" example.
 *  - The long (512-byte) SHAKE outputs and the Msg1600 digests were transcribed
 *    from OpenSSL 3 (Debian 12's /usr/bin/python3 hashlib), an independent
 *    implementation, and their leading bytes agree with the NIST example PDFs.
 * Plus metamorphic checks: absorbing/squeezing in arbitrary pieces equals the
 * one-shot result, and crossing block boundaries at every offset.
 */
#include <string.h>

#include "qai/base.h"
#include "registry/sha3.h"
#include "test.h"

static int unhex(const char *h, uint8_t *out, size_t cap) {
    size_t n = strlen(h) / 2;
    if (n > cap) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return (int)n;
}

static void check_hex(const char *what, const uint8_t *got, size_t n, const char *want_hex) {
    uint8_t want[1024];
    int wn = unhex(want_hex, want, sizeof want);
    CHECK_MSG(wn == (int)n, "%s: expected length %d, have %zu", what, wn, n);
    if (wn != (int)n) return;
    size_t i = 0;
    while (i < n && got[i] == want[i]) i++;
    CHECK_MSG(i == n, "%s: first difference at byte %zu (got %02x want %02x)", what, i, got[i < n ? i : 0],
              want[i < n ? i : 0]);
}

static const char *SHA3_256_EMPTY = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a";
static const char *SHA3_256_ABC = "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532";
static const char *SHA3_512_ABC =
    "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e39340"
    "57340b4cf408d5a56592f8274eec53f0";
static const char *SHA3_256_A3x200 = "79f38adec5c20307a98ef76e8324afbfd46cfd81b22e3973c65fa1bd9de31787";
static const char *SHAKE128_EMPTY_512 =
    "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef263cb1eea988004b93103cfb0aeefd2a68"
    "6e01fa4a58e8a3639ca8a1e3f9ae57e235b8cc873c23dc62b8d260169afa2f75ab916a58d974918835d25e6a435085b2"
    "badfd6dfaac359a5efbb7bcc4b59d538df9a04302e10c8bc1cbf1a0b3a5120ea17cda7cfad765f5623474d368ccca8af"
    "0007cd9f5e4c849f167a580b14aabdefaee7eef47cb0fca9767be1fda69419dfb927e9df07348b196691abaeb580b32d"
    "ef58538b8d23f87732ea63b02b4fa0f4873360e2841928cd60dd4cee8cc0d4c922a96188d032675c8ac850933c7aff15"
    "33b94c834adbb69c6115bad4692d8619f90b0cdf8a7b9c264029ac185b70b83f2801f2f4b3f70c593ea3aeeb613a7f1b"
    "1de33fd75081f592305f2e4526edc09631b10958f464d889f31ba010250fda7f1368ec2967fc84ef2ae9aff268e0b170"
    "0affc6820b523a3d917135f2dff2ee06bfe72b3124721d4a26c04e53a75e30e73a7a9c4a95d91c55d495e9f51dd0b5e9"
    "d83c6d5e8ce803aa62b8d654db53d09b8dcff273cdfeb573fad8bcd45578bec2e770d01efde86e721a3f7c6cce275dab"
    "e6e2143f1af18da7efddc4c7b70b5e345db93cc936bea323491ccb38a388f546a9ff00dd4e1300b9b2153d2041d205b4"
    "43e41b45a653f2a5c4492c1add544512dda2529833462b71a41a45be97290b6f";
static const char *SHAKE256_EMPTY_512 =
    "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762fd75dc4ddd8c0f200cb05019d67b592f6"
    "fc821c49479ab48640292eacb3b7c4be141e96616fb13957692cc7edd0b45ae3dc07223c8e92937bef84bc0eab862853"
    "349ec75546f58fb7c2775c38462c5010d846c185c15111e595522a6bcd16cf86f3d122109e3b1fdd943b6aec468a2d62"
    "1a7c06c6a957c62b54dafc3be87567d677231395f6147293b68ceab7a9e0c58d864e8efde4e1b9a46cbe854713672f5c"
    "aaae314ed9083dab4b099f8e300f01b8650f1f4b1d8fcf3f3cb53fb8e9eb2ea203bdc970f50ae55428a91f7f53ac266b"
    "28419c3778a15fd248d339ede785fb7f5a1aaa96d313eacc890936c173cdcd0fab882c45755feb3aed96d477ff96390b"
    "f9a66d1368b208e21f7c10d04a3dbd4e360633e5db4b602601c14cea737db3dcf722632cc77851cbdde2aaf0a33a07b3"
    "73445df490cc8fc1e4160ff118378f11f0477de055a81a9eda57a4a2cfb0c83929d310912f729ec6cfa36c6ac6a75837"
    "143045d791cc85eff5b21932f23861bcf23a52b5da67eaf7baae0f5fb1369db78f3ac45f8c4ac5671d85735cdddb09d2"
    "b1e34a1fc066ff4a162cb263d6541274ae2fcc865f618abe27c124cd8b074ccd516301b91875824d09958f341ef274bd"
    "ab0bae316339894304e35877b0c28a9b1fd166c796b9cc258a064a8f57e27f2a";
static const char *SHAKE128_A3x200_512 =
    "131ab8d2b594946b9c81333f9bb6e0ce75c3b93104fa3469d3917457385da037cf232ef7164a6d1eb448c8908186ad85"
    "2d3f85a5cf28da1ab6fe3438171978467f1c05d58c7ef38c284c41f6c2221a76f12ab1c04082660250802294fb871802"
    "13fdef5b0ecb7df50ca1f8555be14d32e10f6edcde892c09424b29f597afc270c904556bfcb47a7d40778d390923642b"
    "3cbd0579e60908d5a000c1d08b98ef933f806445bf87f8b009ba9e94f7266122ed7ac24e5e266c42a82fa1bbefb7b8db"
    "0066e16a85e0493f07df4809aec084a593748ac3dde5a6d7aae1e8b6e5352b2d71efbb47d4caeed5e6d633805d2d323e"
    "6fd81b4684b93a2677d45e7421c2c6aea259b855a698fd7d13477a1fe53e5a4a6197dbec5ce95f505b520bcd9570c4a8"
    "265a7e01f89c0c002c59bfec6cd4a5c109258953ee5ee70cd577ee217af21fa70178f0946c9bf6ca8751793479f6b537"
    "737e40b6ed28511d8a2d7e73eb75f8daac912ff906e0ab955b083bac45a8e5e9b744c8506f37e9b4e749a184b30f43eb"
    "188d855f1b70d71ff3e50c537ac1b0f8974f0fe1a6ad295ba42f6aec74d123a7abedde6e2c0711cab36be5acb1a5a11a"
    "4b1db08ba6982efccd716929a7741cfc63aa4435e0b69a9063e880795c3dc5ef3272e11c497a91acf699fefee206227a"
    "44c9fb359fd56ac0a9a75a743cff6862f17d7259ab075216c0699511643b6439";
static const char *SHAKE256_A3x200_512 =
    "cd8a920ed141aa0407a22d59288652e9d9f1a7ee0c1e7c1ca699424da84a904d2d700caae7396ece96604440577da4f3"
    "aa22aeb8857f961c4cd8e06f0ae6610b1048a7f64e1074cd629e85ad7566048efc4fb500b486a3309a8f26724c0ed628"
    "001a1099422468de726f1061d99eb9e93604d5aa7467d4b1bd6484582a384317d7f47d750b8f5499512bb85a226c4243"
    "556e696f6bd072c5aa2d9b69730244b56853d16970ad817e213e470618178001c9fb56c54fefa5fee67d2da524bb3b0b"
    "61ef0e9114a92cdbb6cccb98615cfe76e3510dd88d1cc28ff99287512f24bfafa1a76877b6f37198e3a641c68a7c42d4"
    "5fa7acc10dae5f3cefb7b735f12d4e589f7a456e78c0f5e4c4471fffa5e4fa0514ae974d8c2648513b5db494cea84715"
    "6d277ad0e141c24c7839064cd08851bc2e7ca109fd4e251c35bb0a04fb05b364ff8c4d8b59bc303e25328c09a882e952"
    "518e1a8ae0ff265d61c465896973d7490499dc639fb8502b39456791b1b6ec5bcc5d9ac36a6df622a070d43fed781f5f"
    "149f7b62675e7d1a4d6dec48c1c7164586eae06a51208c0b791244d307726505c3ad4b26b6822377257aa152037560a7"
    "39714a3ca79bd605547c9b78dd1f596f2d4f1791bc689a0e9b799a37339c04275733740143ef5d2b58b96a363d4e0807"
    "6a1a9d7846436e4dca5728b6f760eef0ca92bf0be5615e96959d767197a0beeb";

int main(void) {
    uint8_t out[1024], a3[200];
    memset(a3, 0xA3, sizeof a3);

    qai_sha3_256("", 0, out);
    check_hex("SHA3-256(\"\")", out, 32, SHA3_256_EMPTY);
    qai_sha3_256("abc", 3, out);
    check_hex("SHA3-256(abc)", out, 32, SHA3_256_ABC);
    qai_sha3_512("abc", 3, out);
    check_hex("SHA3-512(abc)", out, 64, SHA3_512_ABC);
    qai_sha3_256(a3, sizeof a3, out);
    check_hex("SHA3-256(A3x200)", out, 32, SHA3_256_A3x200);
    qai_shake128("", 0, out, 512);
    check_hex("SHAKE128(\"\", 512)", out, 512, SHAKE128_EMPTY_512);
    qai_shake256("", 0, out, 512);
    check_hex("SHAKE256(\"\", 512)", out, 512, SHAKE256_EMPTY_512);
    qai_shake128(a3, sizeof a3, out, 512);
    check_hex("SHAKE128(A3x200, 512)", out, 512, SHAKE128_A3x200_512);
    qai_shake256(a3, sizeof a3, out, 512);
    check_hex("SHAKE256(A3x200, 512)", out, 512, SHAKE256_A3x200_512);

    /* Incremental absorb: the 200-byte message in pieces of every size 1..200
     * (crossing the 136/168-byte block boundary at every offset) and squeezing
     * in uneven pieces gives the same stream. */
    int bad_split = 0;
    for (size_t piece = 1; piece <= sizeof a3; piece++) {
        qai_keccak k;
        qai_shake128_init(&k);
        for (size_t off = 0; off < sizeof a3; off += piece)
            qai_keccak_absorb(&k, a3 + off, off + piece > sizeof a3 ? sizeof a3 - off : piece);
        uint8_t got[512];
        size_t o = 0, step = piece % 37 + 1;
        while (o < sizeof got) {
            size_t n = o + step > sizeof got ? sizeof got - o : step;
            qai_keccak_squeeze(&k, got + o, n);
            o += n;
        }
        uint8_t want[512];
        unhex(SHAKE128_A3x200_512, want, sizeof want);
        if (memcmp(got, want, sizeof got) != 0) bad_split++;
    }
    CHECK_EQ_INT(bad_split, 0);

    /* absorb of zero bytes changes nothing; messages of each length 0..300
     * through SHA3-256 incremental (split in two at every point) match one-shot */
    int bad_len = 0;
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7 + 1);
    for (size_t len = 0; len <= sizeof msg; len += 13) {
        uint8_t one[32];
        qai_sha3_256(msg, len, one);
        for (size_t cut = 0; cut <= len; cut++) {
            qai_keccak k;
            uint8_t two[32];
            qai_sha3_256_init(&k);
            qai_keccak_absorb(&k, msg, cut);
            qai_keccak_absorb(&k, NULL, 0);
            qai_keccak_absorb(&k, msg + cut, len - cut);
            qai_keccak_squeeze(&k, two, 32);
            if (memcmp(one, two, 32) != 0) bad_len++;
        }
    }
    CHECK_EQ_INT(bad_len, 0);

    /* the permutation itself: Keccak-f[1600] on the all-zero state, first lane
     * (XKCP KeccakF-1600-IntermediateValues.txt prints lane 0 as F1258F7940E1DDE7) */
    uint64_t st[25] = {0};
    qai_keccak_f1600(st);
    CHECK_MSG(st[0] == 0xF1258F7940E1DDE7ULL, "Keccak-f(0) lane 0 = %016llx", (unsigned long long)st[0]);
    return test_summary();
}
