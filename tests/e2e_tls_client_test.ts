// Inbound TLS requirements (`tls_clt:` in the access map, sendmail 8's TLS_Clt:) end to end: the real MTA
// with STARTTLS, Python's smtplib as the client (with and without STARTTLS, with and without a client
// certificate from the test CA), one loopback source address per rule. `encrypt` refuses MAIL in clear
// text with 530 5.7.0 and takes it after STARTTLS; `verify` needs a verified client certificate (403 4.7.0
// without), `PERM+` makes that 5xx; a name match list checks the certificate's CN (as encoded).

import assert from "node:assert/strict";
import { haveTool } from "./helpers/filters.ts";
import { startTestMta } from "./helpers/mta.ts";

const PYTHON = "/usr/bin/python3";
const TLS = new URL("./fixtures/tls/", import.meta.url).pathname;

const CASES: { rule: string; plain: RegExp; tls: RegExp; cert: RegExp }[] = [
  {
    rule: "encrypt",
    plain: /^530 5\.7\.0 Must issue a STARTTLS command first$/,
    tls: /^250 /,
    cert: /^250 /,
  },
  { rule: "ENCR:112", plain: /^530 5\.7\.0 /, tls: /^250 /, cert: /^250 / },
  { rule: "VERIFY", plain: /^530 5\.7\.0 /, tls: /^403 4\.7\.0 .*no client certificate/, cert: /^250 / },
  { rule: "PERM+VERIFY:112", plain: /^530 5\.7\.0 /, tls: /^550 5\.7\.0 /, cert: /^250 / },
  { rule: "verify client+20one", plain: /^530 /, tls: /^403 /, cert: /^250 / },
  { rule: "VERIFY+CN:somebody", plain: /^530 /, tls: /^403 /, cert: /^403 4\.7\.0 .*CN client\+20one not/ },
  { rule: "may", plain: /^250 /, tls: /^250 /, cert: /^250 / },
];

/** Python's smtplib from 127.0.0.(2+i) for each case: MAIL's reply in clear text, under TLS, with a certificate. */
async function replies(port: number): Promise<string[][]> {
  const script = `
import smtplib, ssl, json
def mail(source, starttls, cert):
    s = smtplib.SMTP("127.0.0.1", ${port}, source_address=(source, 0))
    s.ehlo("client.test")
    if starttls:
        ctx = ssl.create_default_context(cafile=${JSON.stringify(`${TLS}ca.pem`)})
        if cert:
            ctx.load_cert_chain(${JSON.stringify(`${TLS}client.pem`)}, ${JSON.stringify(`${TLS}client.key`)})
        s.starttls(context=ctx)
        s.ehlo("client.test")
    code, text = s.mail("s@sender.test")
    s.quit()
    return "%d %s" % (code, text.decode())
out = []
for i in range(${CASES.length}):
    src = "127.0.0.%d" % (2 + i)
    out.append([mail(src, False, False), mail(src, True, False), mail(src, True, True)])
print(json.dumps(out))
`;
  const o = await new Deno.Command(PYTHON, { args: ["-c", script], stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  assert.equal(o.code, 0, dec.decode(o.stderr));
  return JSON.parse(dec.decode(o.stdout));
}

Deno.test("tls_clt: in the access map makes clients use STARTTLS, or a verified certificate, before MAIL", async () => {
  if (!await haveTool(PYTHON, "python3")) return;
  const rules = CASES.map((c, i) => `tls_clt:127.0.0.${2 + i}\t${c.rule}`);
  const mta = await startTestMta({
    access: ["cltaddr:127\trelay", ...rules].join("\n") + "\n",
    adjust: (cfg) => {
      cfg.smtps[0].tls = {
        cert_file: `${TLS}server.pem`,
        key_file: `${TLS}server.key`,
        CAcert_file: `${TLS}ca.pem`,
        flags: [],
      };
    },
  });
  try {
    const got = await replies(mta.port);
    CASES.forEach((c, i) => {
      const [plain, tls, cert] = got[i];
      assert.match(plain, c.plain, `${c.rule}: in clear text`);
      assert.match(tls, c.tls, `${c.rule}: TLS, no certificate`);
      assert.match(cert, c.cert, `${c.rule}: TLS and a certificate`);
    });
  } finally {
    await mta.stop();
  }
});
