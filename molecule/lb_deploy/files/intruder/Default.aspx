<%@ Page Language="C#" %>
<%@ Import Namespace="System.Diagnostics" %>
<%@ Import Namespace="System.IO" %>
<script runat="server">
// Each query parameter is one attempt against another tenant, made by this app's
// own process: read=FILE, write=FILE, list=FOLDER, signal=PID, connect=UNIX-SOCKET.
// One line per attempt: "<what>: allowed ..." or "<what>: denied <exception> <message>".
string Attempt(string what, Func<string> act)
{
    try { return what + ": allowed " + act(); }
    catch (Exception e) { return what + ": denied " + e.GetType().Name + " " + e.Message.Replace("\n", " "); }
}

string Run(string file, string arguments)
{
    var info = new ProcessStartInfo(file, arguments);
    info.UseShellExecute = false;
    info.RedirectStandardError = true;
    info.RedirectStandardOutput = true;
    using (var process = Process.Start(info))
    {
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
            throw new UnauthorizedAccessException("exit " + process.ExitCode + ": " + output.Trim());
        return output.Trim();
    }
}

void Page_Load(object sender, EventArgs e)
{
    Response.ContentType = "text/plain";
    var q = Request.QueryString;
    if (q["read"] != null)
        Response.Write(Attempt("read", () => File.ReadAllText(q["read"]).Length + " characters") + "\n");
    if (q["write"] != null)
        Response.Write(Attempt("write", () => { File.WriteAllText(q["write"], "written by another tenant\n"); return "written"; }) + "\n");
    if (q["list"] != null)
        Response.Write(Attempt("list", () => Directory.GetFileSystemEntries(q["list"]).Length + " entries") + "\n");
    if (q["signal"] != null)
        Response.Write(Attempt("signal", () => Run("/bin/kill", "-TERM " + int.Parse(q["signal"]))) + "\n");
    if (q["connect"] != null)
        Response.Write(Attempt("connect", () => Run("/usr/bin/python3", "-c \"import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print('connected')\" " + q["connect"])) + "\n");
    Response.Write("intruder ran as " + Environment.UserName + "\n");
}
</script>
