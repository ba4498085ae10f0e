// Monoscape sample app: every response is computed at request time, so a canned
// file cannot pass the tests. GET <prefix>/?q=<text> answers with the SHA-256 of
// the text, the app's version, the host that served it and a per-process counter.
using System;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using System.Web.UI;

namespace Monoscape.Samples
{
    public class HelloPage : Page
    {
        static int served;

        protected override void Render(HtmlTextWriter writer)
        {
            int n = Interlocked.Increment(ref served);
#if BROKEN
            Response.StatusCode = 500;
#endif
            string q = Request.QueryString["q"] ?? "";
            int sleep;
            if (int.TryParse(Request.QueryString["sleep"], out sleep) && sleep > 0)
                Thread.Sleep(Math.Min(sleep, 10000));
            string digest;
            using (SHA256 sha = SHA256.Create())
            {
                byte[] hash = sha.ComputeHash(Encoding.UTF8.GetBytes(q));
                digest = BitConverter.ToString(hash).Replace("-", "").ToLowerInvariant();
            }
            Response.ContentType = "text/plain";
            writer.Write("Hello from Monoscape sample app\n");
            writer.Write("version: " + BuildInfo.Version + "\n");
            writer.Write("path: " + Request.Path + "\n");
            writer.Write("host: " + Environment.MachineName + "\n");
            writer.Write("served: " + n + "\n");
            writer.Write("sha256(q): " + digest + "\n");
            writer.Write("utc: " + DateTime.UtcNow.ToString("o") + "\n");
        }
    }

    public class HealthPage : Page
    {
        protected override void Render(HtmlTextWriter writer)
        {
#if BROKEN
            Response.StatusCode = 503;
            writer.Write("FAIL " + BuildInfo.Version + "\n");
#else
            Response.ContentType = "text/plain";
            writer.Write("OK " + BuildInfo.Version + "\n");
#endif
        }
    }
}
