// /chat: a user's conversation with the support team.
import { startConversation } from "./conversation.js";

await startConversation();
